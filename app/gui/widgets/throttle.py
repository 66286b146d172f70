"""Coalesce bursts of live-update signals into one call per interval."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer


class Throttle(QObject):
    """``trigger()`` runs ``callback`` at most once per ``interval_ms`` (trailing edge)."""

    def __init__(self, callback, interval_ms: int, parent=None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(callback)

    def trigger(self, *_) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def set_interval(self, interval_ms: int) -> None:
        self._timer.setInterval(int(interval_ms))

    def pending(self) -> bool:
        """A call is due."""
        return self._timer.isActive()

    def flush(self) -> None:
        """Run a pending call now (tests)."""
        if self._timer.isActive():
            self._timer.stop()
            self._timer.timeout.emit()
