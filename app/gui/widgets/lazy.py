"""Panels that read the current run only while they are on screen.

A hidden tab (distributions, details, a hidden heatmap) remembers which run it should show
and reads it when it becomes visible: opening a big run costs only what is on screen.
"""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from .throttle import Throttle

LIVE_RELOAD_MS = 2000


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

    def _release(self) -> None:
        """Forget data read from the previous run (panels holding large arrays override)."""

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.load(self._wanted)
