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
