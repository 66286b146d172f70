"""`trainspect import SRC -o RUN.h5`: convert a run logged elsewhere (TensorBoard, CSV) into a run file.

The file name ``import.py`` matches the command; the CLI loads commands with importlib, so
the keyword is no obstacle.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from ..terminal_text import warning_texts


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="TensorBoard log directory or event file, or CSV file: long (step,metric,value) or wide (step + one column per metric)")
    parser.add_argument("-o", "--output", metavar="RUN", help="run file to write (default: SRC with .h5)")
    parser.add_argument("--format", choices=None, help="source format (default: from the file name)")
    parser.add_argument("--force", action="store_true", help="overwrite RUN if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _progress_bar(stream):
    shown = []     # the last percentage drawn: the bar is redrawn only when it changes

    def show(done: int, total: int) -> None:
        width, percent = 30, 100 * done // max(total, 1)
        if shown and shown[-1] == percent:
            return
        shown.append(percent)
        filled = width * done // max(total, 1)
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%")
        if done >= total:
            stream.write("\n")
        stream.flush()
    return show


def run(args) -> int:
    from trainspect.recorder.importers import convert

    src = Path(args.source)
    dst = Path(args.output) if args.output else src.with_suffix(".h5")
    if not src.exists():
        print(f"trainspect import: {src} does not exist", file=sys.stderr)
        return 2
    if dst.exists() and not args.force:
        print(f"trainspect import: {dst} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if (dst.exists() or dst.is_symlink()) and not dst.is_file():   # --force -o /dev/null replaced the device
        print(f"trainspect import: {dst} is not a regular file; not overwritten", file=sys.stderr)
        return 2
    # Written beside the output, then moved over it: a failed import leaves the old run as it was.
    part = dst.with_name(f".{dst.stem}.importing-{os.getpid()}.h5")
    try:
        with warnings.catch_warnings(record=True) as caught:   # a tag the run file cannot hold, ...
            warnings.simplefilter("always")
            summary = convert(src, part, fmt=args.format, progress=None if args.quiet or not sys.stderr.isatty()
                              else _progress_bar(sys.stderr))   # a log file gets no bar redrawn with \r
        os.replace(part, dst)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        print(f"trainspect import: {exc}", file=sys.stderr)
        return 2
    finally:
        part.unlink(missing_ok=True)
    for message in warning_texts(caught):
        print(f"trainspect import: warning: {message}", file=sys.stderr)
    print(f"wrote {dst}: {summary.describe()}")
    return 0
