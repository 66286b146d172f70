"""The windowed half of `trainspect demo`: an offscreen screenshot and the live, tailing app.

The command itself (app/commands/demo.py) trains, diagnoses and prints without Qt and reaches
this module only when a window is wanted.
"""
from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer

from ..commands.demo import (OPEN_TIMEOUT_S, best_match, headline, start_training, stop_training,
                             wait_until_readable)
from ..commands.open import parse_size
from ..present import rich_html, text_lines
from .live import LiveTail
from .main_window import MainWindow, ensure_app, render_screenshot
from .settings import make_settings
from .widgets.advisor_panel import find_same, finding_key


def write_screenshot(path: Path, shot: Path, expected: dict, size: str) -> str:
    """Render the app offscreen with the finding that names the problem selected."""
    app = ensure_app()
    with tempfile.TemporaryDirectory(prefix="trainspect-demo-") as scratch:
        window = MainWindow(settings=make_settings(f"{scratch}/settings.ini"))
        window.resize(*parse_size(size))
        window.open_paths([path])
        window.show()
        window.wait_loaded()
        app.processEvents()
        window.advisor.wait()
        shown = window.advisor.findings
        if shown:
            best = best_match(shown, expected)
            idx = shown.index(best) if best is not None else 0
            window.advisor.tree.setCurrentItem(window.advisor.tree.topLevelItem(idx))
        out = render_screenshot(window, shot)
        window.close()
    return str(out)


VERDICT_MS = 30000


def show_details(panel, finding) -> None:
    """Select ``finding`` in the advisor panel and show its details, without moving the plots
    (jumping to it would stop following the live run)."""
    i = find_same(panel.findings, finding_key(finding))
    if i is not None:
        f = panel.findings[i]
        panel.tree.blockSignals(True)
        panel.tree.setCurrentItem(panel.tree.topLevelItem(i))
        panel.tree.blockSignals(False)
        panel.details.setHtml(rich_html(f))


class LiveVerdict:
    """The status bar's "the advisor names the problem -- ..." sentence of a live demo, kept in
    step with the findings: it was written once, and read "dead ReLUs: 75 %" while the finding
    said 86 %. A new diagnosis rewrites it when its words changed, unless another message
    (training finished) took the status bar meanwhile."""

    def __init__(self, window, expected: dict):
        self.window, self.expected = window, expected
        self.named = False
        self.sentence = None

    def update(self, findings) -> bool:
        """Show the verdict of ``findings``; True the first time it names the problem."""
        named, sentence = headline(findings or [], self.expected)
        if not (named and self.expected["symptoms"]):
            return False
        first = not self.named
        bar = self.window.statusBar()
        if first or (sentence != self.sentence and bar.currentMessage() in ("", self.sentence)):
            bar.showMessage(sentence, VERDICT_MS)
            self.sentence = sentence
        self.named = True
        return first


def run_live(args, expected: dict, path: Path) -> int:
    size = parse_size(args.size)
    app = ensure_app()       # before training starts: a platform plugin that fails aborts here
    proc = start_training(args.scenario, args.steps, path, pace=max(0.0, args.pace), quiet=True)
    print("starting the training subprocess (importing torch can take a few seconds)...", flush=True)
    first = wait_until_readable(path, proc, OPEN_TIMEOUT_S)
    if first is None:
        proc.kill()
        print(f"trainspect demo: the training subprocess did not start writing {path} "
              f"(exit {proc.poll()})", file=sys.stderr)
        return 2
    first.close()
    scratch = tempfile.TemporaryDirectory(prefix="trainspect-demo-")
    window = MainWindow(settings=make_settings(f"{scratch.name}/settings.ini"))
    window.resize(*size)
    live = getattr(window, "live", None)
    if live is None:                    # a window without built-in tailing: bring our own
        window.poll_timer.stop()
        live = LiveTail(window.runs, window.view, window)
        window.live = live
    window.open_paths([path])
    window.setWindowTitle(f"trainspect demo: {args.scenario}")
    window.show()
    print(f"the app is tailing {path}; findings appear in the Advisor panel (and here) as the problem emerges")

    reported: set = set()
    verdict = LiveVerdict(window, expected)

    def on_findings(key, findings, message):
        for f in findings or []:
            k = finding_key(f)
            if k not in reported:
                reported.add(k)
                for line in text_lines(f, brief=True):
                    print(line, flush=True)
        if verdict.update(findings):
            print(f"==> {verdict.sentence}", flush=True)
            if window.advisor.selected_finding() is None:    # the user's own pick stays
                show_details(window.advisor, best_match(findings, expected))

    window.advisor.jobs.finished.connect(on_findings)

    def watch_trainer():
        if proc.poll() is not None and trainer_timer.interval() == 250:
            trainer_timer.setInterval(1000)   # keep ticking for Ctrl-C, less often
            window.statusBar().showMessage(f"training finished (exit {proc.returncode}); the run stays open", 30000)

    trainer_timer = QTimer(window)   # also gives Python a moment to run signal handlers
    trainer_timer.timeout.connect(watch_trainer)
    trainer_timer.start(250)
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())   # Ctrl-C in the terminal
    try:
        app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        stop_training(proc)
        scratch.cleanup()
    print(f"run file: {path}  (open it again: trainspect open {path})")
    return 0
