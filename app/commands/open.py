"""``trainspect open RUN [RUN ...]``: the desktop app (``--screenshot`` renders offscreen and exits)."""
from __future__ import annotations

import os
import sys

from ..display import window_problem

DEFAULT_SIZE = (1600, 1000)
NO_WINDOW = ("without a window: `trainspect tail RUN` follows a run as text, `trainspect open RUN --screenshot "
             "out.png` renders the app to a picture, `trainspect report RUN` writes an HTML report")


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", help="run files (.h5) to open, directories holding them, or TensorBoard logs")
    parser.add_argument("--screenshot", metavar="PATH", help="render the window to a PNG offscreen and exit")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="window size (default: the remembered one; 1600x1000 for --screenshot)")
    parser.add_argument("--finding", type=int, default=None, metavar="N",
                        help="with --screenshot: focus the N-th advisor finding (0 = most severe)")


def parse_size(text: str) -> tuple[int, int]:
    """``(w, h)`` of ``--size WxH``; ValueError saying what is wrong."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1600x1000, not {text!r}") from None
    if w < 200 or h < 150:
        raise ValueError(f"--size {text} is too small (at least 200x150)")
    return w, h


def wait_for_remote(app, window, timeout_s: float = 120.0) -> None:
    """ssh:// runs open when their mirror has data: wait for them (a screenshot shows them)."""
    import time

    deadline = time.monotonic() + timeout_s
    # rank 0's mirror opens first; its other ranks are fetched once it is open
    while (window.remote.busy() or window.runs.loading()) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def run(args) -> int:
    from trainspect.analysis import RunFileError

    from ..run_paths import expand_runs, run_file

    given = args.runs
    expanded = expand_runs(given)
    if given and not expanded:
        print("trainspect open: no run files (*.h5) or TensorBoard logs in " + ", ".join(given), file=sys.stderr)
        return 2
    args.runs = []
    for path in expanded:
        try:
            args.runs.append(run_file(path))
        except RunFileError as exc:
            print(f"trainspect open: {exc}", file=sys.stderr)
    if expanded and not args.runs:
        return 2
    try:
        size = parse_size(args.size) if args.size else None
    except ValueError as exc:
        raise SystemExit(f"trainspect open: {exc}") from None
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"   # no display needed to render a PNG
    import tempfile

    from trainspect.app.gui.main_window import MainWindow, dispose_window, ensure_app, render_screenshot
    from trainspect.app.gui.settings import make_settings

    # Probed first: Qt aborts the process where it cannot start (no display, X libraries missing);
    # a screenshot renders offscreen.
    problem = None if args.screenshot else window_problem()
    if problem:
        print(f"trainspect open: cannot open a window: {problem}\n{NO_WINDOW}", file=sys.stderr)
        return 2
    app = ensure_app()
    if args.screenshot:
        # Reproducible pictures: default layout, and the user's settings stay untouched.
        scratch = tempfile.TemporaryDirectory(prefix="trainspect-shot-")
        window = MainWindow(settings=make_settings(f"{scratch.name}/settings.ini"))
    else:
        window = MainWindow()
    if size is not None or args.screenshot or window.settings.value("window/geometry") is None:
        window.resize(*(size or DEFAULT_SIZE))
    # Files open on background threads; each failure is printed as it comes back.
    window.runs.errorOccurred.connect(lambda path, message: print(f"trainspect open: {message}", file=sys.stderr))
    remote_failed = set()

    def on_remote_failed(url, message):
        remote_failed.add(str(url))
        print(f"trainspect open: {message}", file=sys.stderr)

    window.remote.failed.connect(on_remote_failed)
    rows = window.open_paths(args.runs)
    if args.screenshot:
        window.show()
        wait_for_remote(app, window)
        window.wait_loaded()
        app.processEvents()
        failed = sum(e.state == "failed" for e in rows) + len(remote_failed & {str(r) for r in args.runs})
        window.advisor.wait()
        window.wait_background(10.0)   # a distributed run's Ranks tab came and went with the read race
        findings = window.advisor.findings
        # The first warning is shown as if clicked; a note (info) only when asked for: zoomed to a
        # "still falling" note's last quarter, sparse metrics were empty panels and the start of
        # training out of view.
        idx = args.finding if args.finding is not None else 0 if findings and findings[0].severity != "info" else None
        if findings and idx is not None:
            window.advisor.tree.setCurrentItem(window.advisor.tree.topLevelItem(min(idx, len(findings) - 1)))
        path = render_screenshot(window, args.screenshot)
        print(f"wrote {path}")
        dispose_window(window)
        return 2 if failed and failed == len(args.runs) else 0
    window.show()
    code = int(app.exec())
    dispose_window(window)
    return code

