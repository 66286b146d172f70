"""Panels that read the current run only while they are on screen.

A hidden tab (distributions, details, a hidden heatmap) remembers which run it should show
and reads it when it becomes visible: opening a big run costs only what is on screen.
"""
from __future__ import annotations

import functools

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from ..run_io import ReaderBusy
from .throttle import Throttle

LIVE_RELOAD_MS = 2000
BUSY_RETRY_MS = 300     # the file was busy (a background read): look again after this


def retry_if_busy(method):
    """A panel method that reads the file: when a background read holds the file, it runs
    again ``BUSY_RETRY_MS`` later instead of blocking the window (or raising into Qt)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ReaderBusy:
            QTimer.singleShot(BUSY_RETRY_MS, self, lambda: wrapper(self, *args, **kwargs))
    return wrapper


class LazyPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._wanted = None
        self._stale = False

    def follow_current_run(self, runs) -> None:
        """Show ``runs.current``; a live run is re-read at most every LIVE_RELOAD_MS, not on every poll."""
        runs.currentChanged.connect(self.load)
        self.live_reload = Throttle(lambda: self.load(runs.current), LIVE_RELOAD_MS, self)
        runs.runUpdated.connect(lambda e, n: e is runs.current and self.live_reload.trigger())

    def load(self, entry) -> None:
        self._wanted = entry
        if not self.isVisible():
            self._stale = True
            self._release()   # drop the previous run's data now, not when shown again
            return
        self._stale = False
        self._load(entry)

    def _load(self, entry) -> None:  # implemented by the panel
        raise NotImplementedError

    def read_failed(self, runs, entry, what: str, exc: Exception) -> None:
        """A read for this panel failed: a busy file is read again in a moment; anything else
        marks the run's row (and the banner) and the panel shows what it has."""
        if isinstance(exc, ReaderBusy):
            QTimer.singleShot(BUSY_RETRY_MS, self, lambda: self._wanted is entry and self.load(entry))
            return
        runs.report_read_error(entry, f"{entry.path}: cannot read {what} ({exc})")

    def _release(self) -> None:
        """Forget data read from the previous run (panels holding large arrays override)."""

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.load(self._wanted)
