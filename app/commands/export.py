"""`trainspect export RUN --csv DIR`: every scalar and layer statistic as CSV files.

One file per metric with points (step,value,wall_time), one wide file per layer statistic
(step + a column per layer), and DIR/index.csv mapping metric names to files; `pandas.read_csv` reads
each of them as it is (NaN/Inf written as nan/inf). No Qt needed.
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run file (.h5), finished, crashed or live")
    parser.add_argument("--csv", required=True, metavar="DIR", help="directory for the CSV files (created if missing)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--force", action="store_true",
                        help="write into a directory that holds other files (they may be overwritten)")


def run(args) -> int:
    from trainspect.analysis import RunFileError, open_run
    from trainspect.app.commands.report import print_progress
    from trainspect.app.report.csv_export import export_run_csv

    out = Path(args.csv)
    if out.exists() and not out.is_dir():
        print(f"trainspect export: {out} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        with open_run(args.run) as r:
            others = _foreign_files(out)
            if others and not args.force:
                # a metric named like one of them replaced it without a word (attack round 4, B8)
                shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
                print(f"trainspect export: {out} holds files of its own ({shown}) that an export could overwrite: "
                      "export into a new or empty directory, or one an earlier export wrote, or pass --force",
                      file=sys.stderr)
                return 2
            for warning in r.warnings:
                print(f"trainspect export: warning: {r.path}: {warning}", file=sys.stderr)
            files = export_run_csv(r, out, progress=None if args.quiet else print_progress)
    except RunFileError as exc:
        print(f"trainspect export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"trainspect export: cannot write to {out}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {out} (index: {out / 'index.csv'})")
    return 0


def _foreign_files(directory: Path) -> list[str]:
    """Names of the entries of ``directory`` an earlier export did not write (none when its
    index.csv, as export writes it, is there: re-exporting replaces its own files)."""
    from trainspect.app.report.csv_export import INDEX_HEADER, INDEX_NAME

    try:
        entries = sorted(p.name for p in directory.iterdir())
    except OSError:          # missing (created later) or unreadable (the write says so)
        return []
    index = directory / INDEX_NAME
    try:
        with index.open(encoding="utf-8") as fh:
            if fh.readline().strip() == ",".join(INDEX_HEADER):
                return []
    except OSError:
        pass
    return entries
