"""Python's cyclic garbage collector runs only on the GUI thread while a window is open.

Automatic collection runs in whichever thread happens to allocate: a background reader building
plot envelopes collected a closed panel's Qt wrappers, so ~QObject ran off the GUI thread, took a
Qt lock and waited for the GIL, while the GUI thread held the GIL and waited for that lock: the
app froze (seen in CI, the test window of a Distributions test stuck for 15 minutes). pyqtgraph
documents the same hazard (``pyqtgraph.util.garbage_collector``). While a window is open,
automatic collection is off and a timer on the GUI thread collects each generation when its
count passes the threshold Python would have used; the last window to close collects what it
left, on the GUI thread, and turns automatic collection back on.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class _GuiThreadCollector(QObject):
    def __init__(self):
        super().__init__()
        self.users = 0
        self.was_enabled = gc.isenabled()
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.collect_due)

    def collect_due(self) -> None:
        counts, (t0, t1, t2) = gc.get_count(), self.threshold
        if counts[0] <= t0:
            return
        generation = 2 if counts[2] > t2 else 1 if counts[1] > t1 else 0
        gc.collect(generation)


_collector: _GuiThreadCollector | None = None


def acquire() -> None:
    """A window opens: from now on only the GUI thread collects garbage."""
    global _collector
    if _collector is None:
        _collector = _GuiThreadCollector()
    c = _collector
    if c.users == 0:
        c.was_enabled = gc.isenabled()
        gc.collect()     # what a window closed before left, collected here on the GUI thread
        gc.disable()
        c.timer.start()
    c.users += 1


def release() -> None:
    """A window closed: the last one collects its garbage here and restores automatic collection."""
    c = _collector
    if c is None or c.users == 0:
        return
    c.users -= 1
    if c.users == 0:
        c.timer.stop()
        gc.collect()
        if c.was_enabled:
            gc.enable()
