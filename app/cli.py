"""The ``trainspect`` console script.

Each subcommand lives in ``app/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported lazily so ``trainspect diagnose`` works on a
machine without Qt.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .terminal_text import guarded

# Exit status of a program killed by SIGPIPE, as a shell reports it (`yes | head`): 128 + 13.
EXIT_BROKEN_PIPE = 141

COMMANDS = {
    "open": "open one or more runs (or the runs in a directory) in the desktop app",
    "diagnose": "print the advisor's findings for a run (exit 0 = healthy, 1 = warnings, 2 = unreadable, "
                "3 = the run crashed or went stale)",
    "report": "write an HTML or PDF report of one or more runs",
    "export": "export a run's scalars to CSV files",
    "info": "print a summary of a run file (or of each run in a directory)",
    "compare": "print runs side by side, one row each: the config keys that differ, losses, metrics (--csv, --sort)",
    "import": "convert a TensorBoard log directory or a CSV log into a run file",
    "tail": "follow a live run in the terminal",
    "fetch": "copy a remote run (ssh://host/path.h5) into a local mirror, resuming where it stopped",
    "stream": "send a run's new rows on stdout (the remote half of ssh:// runs)",
    "demo": "train a small model with a planted problem and watch trainspect find it",
}


def _command_module(name: str):
    return importlib.import_module(f"trainspect.app.commands.{name}")


def _version() -> str:
    from trainspect import __version__

    return __version__


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainspect", description="Find out why a neural network does not converge.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (others may need Qt or torch).
        if only is None or only == name:
            try:
                _command_module(name).add_arguments(p)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("trainspect.app.commands"):
                    continue
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a reader that stops early (``| head``) ends it quietly."""
    _printable_output()
    try:
        with guarded():
            code = _main(argv)
            sys.stdout.flush()   # a broken pipe shows up here when the output was buffered
        return code
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _printable_output() -> None:
    """A file name that is not valid UTF-8 (``bad_\\xff.h5``) reaches Python as a lone surrogate;
    print it as ``\\udcff`` instead of dying on it, whatever PYTHONIOENCODING says."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):   # not a text stream we may reconfigure
            pass


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in COMMANDS else "")
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        module = _command_module(args.command)
    except ModuleNotFoundError as exc:
        if exc.name == f"app.commands.{args.command}":
            print(f"trainspect: '{args.command}' is not available in this build", file=sys.stderr)
            return 2
        if exc.name and exc.name.split(".")[0] in {"PySide6", "pyqtgraph"}:
            print(f"trainspect {args.command}: needs the app extra: pip install 'trainspect[app]'", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.run(args) or 0)
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as exc:   # noqa: BLE001 - a damaged file must not print a traceback
        # A crafted file can still reach a reader path nothing guards (weights/step reversed: an
        # IndexError, exit 1 = "warnings found" to a CI gate, trial 18 A7): one line, exit 2.
        if os.environ.get("TRAINSPECT_TRACEBACK"):
            raise
        print(f"trainspect {args.command}: {internal_error_text(exc)}", file=sys.stderr)
        return EXIT_UNREADABLE


EXIT_UNREADABLE = 2


def internal_error_text(exc: BaseException) -> str:
    """One line for an unexpected exception while reading a run (no traceback)."""
    from .terminal_text import one_line

    text = one_line(str(exc))
    if len(text) > 300:
        text = text[:150] + " … " + text[-150:]
    return (f"could not read the run ({type(exc).__name__}: {text}): the file may be damaged; "
            "if it is not, please report this (TRAINSPECT_TRACEBACK=1 shows where it failed)")


if __name__ == "__main__":
    sys.exit(main())
