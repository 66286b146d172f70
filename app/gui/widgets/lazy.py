"""Panels that read the current run only while they are on screen.

A hidden tab (distributions, details, a hidden heatmap) remembers which run it should show
and reads it when it becomes visible: opening a big run costs only what is on screen.
"""
from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from .. import theme
from ..plain_text import shown
from ..run_io import LatestReads, locked_read
from .parts import NAME_CHARS, elide
from .throttle import Throttle

LIVE_RELOAD_MS = 2000
ERROR_STYLE = "color:#C62828"


class LazyPanel(QWidget):
    """A panel of the current run. Its file reads run on the model's background readers
    (:meth:`read`): a read that hangs inside HDF5 leaves the window responsive, the panel says
    it is reading, then shows the answer, or the error in place of the data."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._wanted = None
        self._stale = False
        self.reads: LatestReads | None = None

    def follow_current_run(self, runs) -> None:
        """Show ``runs.current``; a live run is re-read at most every LIVE_RELOAD_MS, not on every poll."""
        runs.currentChanged.connect(self.load)
        self.live_reload = Throttle(self._reload, LIVE_RELOAD_MS, self)
        runs.runUpdated.connect(lambda e, n: self.shows_rows_of(e, runs.current) and self.live_reload.trigger())

    def shows_rows_of(self, updated, current) -> bool:
        """New rows of the run ``updated`` change what this panel shows of ``current``."""
        return updated is current

    def _reload(self) -> None:
        """Live data arrived. A read still on its way is let finish (on a big run a read can
        outlast the reload interval: replacing it each time would never show anything); the
        next reload picks up what it missed."""
        if self.reading():
            self.live_reload.trigger()
        else:
            self.load(self.runs.current)

    def load(self, entry) -> None:
        """Show ``entry`` (or that of a newer setting): answers still to come are stale."""
        self._wanted = entry
        if self.reads is not None:
            self.reads.forget()
        if not self.isVisible():
            self._stale = True
            self._release()   # drop the previous run's data now, not when shown again
            return
        self._stale = False
        self._load(entry)

    def _load(self, entry) -> None:  # implemented by the panel
        raise NotImplementedError

    def read(self, kind: str, entry, work, show, what: str, run=None, also=()) -> None:
        """``work()`` on a background reader holding ``entry``'s file, then ``show(result)`` here
        (dropped if the panel asked for a newer ``kind`` read meanwhile). A failed read is
        shown in the panel and on the run's row (see :meth:`read_failed`). ``run``: the file
        ``work`` reads when it is not ``entry``'s current one (data read before a reopen);
        ``also``: other open runs ``work`` reads (their locks are held too)."""
        if self.reads is None:
            self.reads = LatestReads(self.runs.io)
        self.reads.request(kind, entry.key, lambda: locked_read(run or entry.run, work, also), show,
                           lambda exc: self.read_failed(self.runs, entry, what, exc))

    def reading(self) -> bool:
        """A read of this panel has not come back yet (tests, screenshots)."""
        return self.reads is not None and self.reads.pending()

    def read_failed(self, runs, entry, what: str, exc: Exception) -> None:
        """A read for this panel failed: the panel says so, the run's row (and the banner) too."""
        message = f"{entry.path}: cannot read {what} ({exc})"
        self.show_error(f"cannot read {what}: {exc}")
        runs.report_read_error(entry, message)

    def say_reading(self, what: str, entry) -> None:
        """The loading state: shown until the first answer for ``entry`` arrives."""
        self.say(f"reading {what} of {elide(shown(entry.name), NAME_CHARS)}…")

    def show_error(self, text: str) -> None:
        """Show ``text`` in place of the data (in red)."""
        self.say(text, error=True)

    def say(self, text: str, error: bool = False) -> None:
        """``text`` in the panel's message line, in place of the data (panels override to hide
        their plots too); an empty text hides the line. Shown as plain text: it names runs and
        files (a run named ``<img src="/dev/zero">`` made Qt read /dev/zero as rich text)."""
        label = getattr(self, "message", None)
        if label is not None:
            label.setStyleSheet(f"color:{theme.error_color()}" if error else "")
            label.setTextFormat(Qt.PlainText)
            label.setText(text)
            label.setVisible(bool(text))

    def _release(self) -> None:
        """Forget data read from the previous run (panels holding large arrays override)."""

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.load(self._wanted)
