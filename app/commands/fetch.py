"""``trainspect fetch ssh://host/path.h5``: bring a remote run's local mirror up to date.

The mirror (a normal run file in the XDG cache, path printed) resumes from the rows it
already holds. ``--follow`` keeps it up to date until the run ends, reconnecting when the
connection drops. Exit code: 0 = done, 2 = error (message on stderr).
"""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("url", metavar="URL", help="ssh://[user@]host[:port]/path/run.h5")
    parser.add_argument("--follow", action="store_true", help="keep following the live run")
    parser.add_argument("--wait", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for the remote run file to appear")


def run(args) -> int:
    from trainspect.analysis.stream import StreamError

    from .. import remote

    try:
        r = remote.parse(args.url)
    except ValueError as exc:
        print(f"trainspect fetch: {exc}", file=sys.stderr)
        return 2
    if args.follow:
        try:
            return remote.follow(r, wait_s=args.wait, say=lambda m: print(m, file=sys.stderr, flush=True))
        except KeyboardInterrupt:   # Ctrl-C in the tail that started us
            return 0
    try:
        remote.fetch(r, follow=False, wait_s=args.wait)
    except StreamError as exc:
        print(f"trainspect fetch: {exc}", file=sys.stderr)
        return 2
    print(remote.mirror_path(r))
    return 0
