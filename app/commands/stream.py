"""``trainspect stream RUN --from STATE``: the remote half of ``ssh://`` runs.

Writes the run's rows on stdout in the framed protocol of ``analysis.stream`` (only the rows
after STATE, a JSON {dataset: rows} the local mirror already holds), then new rows after
every flush of the writer, until the run ends. Exits quietly when the reader goes away.
"""
from __future__ import annotations

import json
import signal
import sys


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run file (.h5) on this machine")
    parser.add_argument("--from", dest="state", default="{}", metavar="STATE",
                        help='JSON {"dataset": rows already held}; rows before these are not sent')
    parser.add_argument("--wait", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for the run file to appear")
    parser.add_argument("--once", action="store_true", help="send what is there and exit")
    parser.add_argument("--list", action="store_true",
                        help="RUN is a glob (runs/*.h5): print the matching run files, one per line, and exit")


def list_runs(pattern: str) -> int:
    """The files a remote glob stands for (``ssh://host/runs/*.h5`` is expanded here, remotely)."""
    import glob
    import os

    matches = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
    if not matches:
        print(f"trainspect stream: no run files match {pattern}", file=sys.stderr)
        return 2
    for p in matches:
        print(os.path.abspath(p))
    return 0


def run(args) -> int:
    from trainspect.analysis.stream import serve

    if args.list:
        return list_runs(args.run)

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # reader gone: end without a traceback
    try:
        have = json.loads(args.state)
        if not isinstance(have, dict):
            raise ValueError("not an object")
        bad = next((k for k, v in have.items() if type(v) is not int or v < 0), None)
        if bad is not None:     # 1e400, "x", -5 each ended in a traceback or a negative row count
            raise ValueError(f"{bad!r}: {have[bad]!r} is no row count")
    except ValueError as exc:
        print(f"trainspect stream: --from must be a JSON object of row counts ({exc})", file=sys.stderr)
        return 2
    try:
        serve(args.run, have, sys.stdout.buffer, wait_s=args.wait, follow=not args.once)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    return 0
