"""`trainspect report RUN [RUN ...] -o report.html|report.pdf`: a shareable report.

HTML is one self-contained file (inline CSS + SVG, no scripts, no URLs) and needs no Qt; PDF is
drawn by Qt offscreen (no browser). Progress lines go to stderr. Exit 2 = a file could not be
read or written, or the output name has an unknown extension.
"""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run file(s) (.h5) or TensorBoard logs; several runs get a side-by-side comparison")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="report file: .html (self-contained) or .pdf")
    parser.add_argument("--title", help="report title (default: the run names; for more than 3 runs their "
                                        "number and folder, e.g. '12 runs in sweep/')")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def print_progress(done: int, total: int, text: str) -> None:
    from ..terminal_text import clip

    # a run name of 10 MB made 30 MB of progress lines (trial 18 A5)
    print(f"[{done}/{total}] {clip(text, 300)}", file=sys.stderr, flush=True)


def run(args) -> int:
    from trainspect.analysis import RunFileError
    from trainspect.app.report import export_report, report_format

    try:
        kind = report_format(args.output)
    except ValueError as exc:
        print(f"trainspect report: {exc}", file=sys.stderr)
        return 2
    if kind == "pdf":
        from trainspect.app.gui.pdf import qt_available

        if not qt_available():   # fail early with the install hint, before any work
            print("trainspect report: PDF output needs the app extra: pip install 'trainspect[app]' "
                  "(or write .html)", file=sys.stderr)
            return 2
    from trainspect.analysis.ranks import fold_rank_paths

    from ..run_paths import expand_runs, run_file

    try:   # a distributed run's rank files are one run (its rank 0), as info and the app read them
        runs = [run_file(p) for p in fold_rank_paths(expand_runs(args.runs))]
        if not runs:
            raise RunFileError("no run files (*.h5) or TensorBoard logs in " + ", ".join(args.runs))
        path = export_report(runs, args.output, progress=None if args.quiet else print_progress, title=args.title)
    except RunFileError as exc:
        print(f"trainspect report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"trainspect report: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"trainspect report: wrote {path}", file=sys.stderr)
    return 0
