"""Tail live runs: poll the open runs on an adaptive timer, report each run's state, follow
the newest step.

- Waking: a ``QFileSystemWatcher`` (inotify on Linux) watches every open run file; a write by
  the recorder schedules a poll ``CHANGE_DELAY_MS`` later (the writes of one flush arrive
  together), so a flush is on screen within milliseconds instead of a poll interval.
- Polling: each look runs on the model's background readers (``look_at``), never on the GUI
  thread; a run whose look has not come back is skipped, so a hung file stalls only itself.
  A run whose writer flushed since the last look (its heartbeat moved) is refreshed;
  otherwise only its status is read (0.3 ms against 1.3 ms for a refresh, measured on a
  digits run). Finished and crashed runs are final: they are not polled at all. The timer
  runs every ``FAST_MS`` while data arrives, backs off to ``LIVE_MAX_MS`` while some writer
  is alive but quiet, and to ``IDLE_MS`` when no run is live. With the file watcher working
  the timer is only a safety net (stale detection, file systems without change events) and
  backs off to ``WATCHED_MAX_MS`` instead.
- State: ``statusChanged(entry, RunStatus)`` when a run turns live / finished / crashed /
  stale ("writer stopped responding at step N"), so no run stays "running" forever.
- Follow: while following, the plots auto-range (the newest step stays in view). A user
  pan or zoom (any step range in the ViewState) stops following; ``set_follow(True)``
  brings the view back.
- Metrics first seen mid-run join the plots if the user has not picked metrics by hand.
- Restarts: a run resumed (``Recorder(..., resume=True)``) or replaced (``overwrite=True``)
  under the window is seen by a look (``RunRestarted``, see ``app/restarts.py``) and the model
  reopens it in the same row (``RunsModel.reopen``). Finished and crashed runs are looked at
  again when their file changes.

No widgets here: the window wires a toolbar action and the run list to these signals.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from trainspect.analysis import RunFileError

from ..restarts import replaced, writer_sidecar
from ..vocab import RunState
from .model import default_metrics
from .run_io import ReaderBusy

FAST_MS = 100          # while rows arrive
LIVE_MAX_MS = 150      # quiet but live writer: keeps flush -> visible under 0.25 s (p99, with margin)
IDLE_MS = 1000         # nothing live (finished / crashed / stale runs only)
WATCHED_MAX_MS = 1000  # every run file is watched for changes: the timer is only a safety net
CHANGE_DELAY_MS = 3    # a file change: poll this soon (one flush writes several times)
BACKOFF = 1.5
STATUS_EVERY_S = 1.0   # stale runs: how often to look whether their writer came back
FINAL_STATES = tuple(s for s in RunState if s.final)   # recording stopped too: nothing more comes


class _Watch:
    """What the tail remembers about one run between polls."""

    __slots__ = ("status", "heartbeat", "settle", "checked", "error", "sidecar", "changed")

    def __init__(self):
        self.status = None      # last RunStatus
        self.heartbeat = None   # heartbeat at the last refresh
        self.settle = 0         # extra refreshes after a heartbeat change (rows may land late)
        self.checked = 0.0      # monotonic time of the last status read
        self.error = ""         # last status error reported (reported once, not every poll)
        self.sidecar = UNSEEN   # a final run's writer sidecar when first seen final (see look_at)
        self.changed = False    # the file watcher saw the file change since the last look


class RunRestarted(Exception):
    """The file was resumed or replaced under its reader: the model opens it again."""


UNSEEN = object()


def look_at(run, heartbeat, settle: int, sidecar=UNSEEN):
    """One look at a run (a background reader's job): its status, and its new rows when the
    writer flushed since ``heartbeat`` (and ``settle`` more times after: rows may land late).
    Returns ``(status, settle left, (new rows, metric names or None) or None, sidecar)``.

    Raises :class:`RunRestarted` when the path now holds another file, the writer sessions
    grew (a run resumed: readable while the reader follows the file in SWMR mode, even when the
    resumed session has already ended), or a finished / crashed run has a writer again: the
    lock sidecar differs from ``sidecar``, the one seen at its first final look (returned)."""
    origin = run.origin
    if origin is not None and replaced(run.path, origin.identity):
        raise RunRestarted()
    try:
        return _look(run, heartbeat, settle, sidecar, origin)
    except RunFileError:
        # A writer resuming the file changes it under this reader for a moment.
        if origin is not None and (replaced(run.path, origin.identity) or run.sessions > origin.sessions):
            raise RunRestarted() from None
        raise


def _look(run, heartbeat, settle: int, sidecar, origin):
    with run.locked() as r:
        st = r.status()
        if origin is not None and r.sessions > origin.sessions:
            raise RunRestarted()
        if st.state in FINAL_STATES:
            now = writer_sidecar(run.path)
            if sidecar is not UNSEEN and now is not None and now != sidecar:
                raise RunRestarted()
            sidecar = now
        if st.heartbeat != heartbeat:
            settle = 2
        if settle <= 0:
            return st, 0, None, sidecar
        n = r.refresh()
        return st, settle - 1, (n, r.scalar_names() if n else None), sidecar


class LiveTail(QObject):
    """Adaptive polling of a :class:`RunsModel`, run states, follow mode."""

    statusChanged = Signal(object, object)   # RunEntry, RunStatus
    followChanged = Signal(bool)
    polled = Signal(int, float)              # new rows, milliseconds the poll took

    def __init__(self, runs, view=None, parent=None, *, fast_ms: int = FAST_MS,
                 live_max_ms: int = LIVE_MAX_MS, idle_ms: int = IDLE_MS, start: bool = True):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.fast_ms, self.live_max_ms, self.idle_ms = int(fast_ms), int(live_max_ms), int(idle_ms)
        self.follow = True
        self.last_poll_ms = 0.0
        self._watch: dict[str, _Watch] = {}
        self._user_picked_metrics = False
        self._looking: set = set()          # keys of runs with a look in flight
        self._got_rows = False              # a look since the last tick brought rows
        self._setting_metrics = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._tick)
        self._interval = self.fast_ms
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._on_file_changed)
        self._unwatched: set = set()        # keys of runs whose file the watcher could not take
        runs.runAdded.connect(self._on_added)
        runs.runRemoved.connect(self._on_removed)
        runs.runUpdated.connect(self._on_updated)
        if view is not None:
            view.stepRangeChanged.connect(self._on_step_range)
            view.metricsChanged.connect(self._on_metrics_changed)
        for e in runs.runs():
            self._on_added(e)
        if start:
            self.start()

    # ------------------------------------------------------------ timer
    def start(self) -> None:
        self._interval = self.fast_ms
        self.timer.start(self._interval)

    def stop(self) -> None:
        self.timer.stop()

    @property
    def interval_ms(self) -> int:
        return self._interval

    def _tick(self) -> None:
        new = self._got_rows
        self._got_rows = False
        try:
            self.poll_async()
        finally:                            # an error in one poll must not end the tailing
            if new:
                self._interval = self.fast_ms
            else:
                if not self.any_live():
                    ceiling = self.idle_ms
                elif self._unwatched:
                    ceiling = self.live_max_ms
                else:
                    ceiling = max(self.live_max_ms, WATCHED_MAX_MS)
                self._interval = min(ceiling, max(self.fast_ms, int(self._interval * BACKOFF)))
            self.timer.start(self._interval)

    def _on_file_changed(self, path: str) -> None:
        if path not in self.watcher.files():    # replaced or deleted: watch the new file
            self.watcher.addPath(path)
        for e in self.runs.runs():              # a finished run written again: look at it
            w = self._watch.get(e.key)
            if w is not None and str(e.path) == path:
                w.changed = True
        if self.timer.isActive() and self.timer.remainingTime() > CHANGE_DELAY_MS:
            self.timer.start(CHANGE_DELAY_MS)

    # ------------------------------------------------------------ polling
    def _due(self, e, w: _Watch, now: float) -> bool:
        if w.status is not None and w.status.state in FINAL_STATES and w.settle == 0:
            # final: nothing more will come, unless a writer takes the file up again (resume,
            # overwrite): looked at when the file changes, or now and then if it is not watched
            return w.changed or (e.key in self._unwatched and now - w.checked >= STATUS_EVERY_S)
        if w.status is not None and w.status.state == RunState.STALE and now - w.checked < STATUS_EVERY_S:
            return False
        return True

    def poll_async(self) -> None:
        """Look at every open run on the background readers (what the timer does). A run whose
        last look has not come back is skipped: a hung file ties up one reader, not the app."""
        now = time.monotonic()
        for e in self.runs.runs():
            w = self._watch.setdefault(e.key, _Watch())
            if e.key in self._looking or not self._due(e, w, now):
                continue
            self._looking.add(e.key)
            w.changed = False
            heartbeat, settle, t0 = w.heartbeat, w.settle, time.perf_counter()
            self.runs.io.submit(lambda e=e, h=heartbeat, s=settle, c=w.sidecar: look_at(e.run, h, s, c),
                                lambda result, e=e, t0=t0: self._looked(e, result, t0),
                                lambda exc, e=e: self._look_failed(e, exc))

    def poll(self) -> int:
        """One look at every open run, blocking (tests, benchmarks); returns the new rows."""
        t0 = time.perf_counter()
        now = time.monotonic()
        new = 0
        for e in self.runs.runs():
            w = self._watch.setdefault(e.key, _Watch())
            if not self._due(e, w, now):
                continue
            w.changed = False
            try:
                result = look_at(e.run, w.heartbeat, w.settle, w.sidecar)
            except Exception as exc:
                self._look_failed(e, exc)
                continue
            new += self._looked(e, result, None)
        self.last_poll_ms = (time.perf_counter() - t0) * 1e3
        self.polled.emit(new, self.last_poll_ms)
        return new

    def _looked(self, entry, result, t0) -> int:
        """A look came back (GUI thread): new state, new rows."""
        self._looking.discard(entry.key)
        w = self._watch.get(entry.key)
        if w is None or entry not in self.runs.runs():
            return 0                # closed meanwhile
        st, settle, refreshed, sidecar = result
        if st.state in FINAL_STATES and w.sidecar is UNSEEN:
            w.sidecar = sidecar
        w.error = ""
        w.checked = time.monotonic()
        w.heartbeat, w.settle = st.heartbeat, settle
        old, w.status = w.status, st
        entry.status = st
        if old is None or old.state != st.state:
            self.statusChanged.emit(entry, st)
        new = self.runs.apply_refresh(entry, refreshed) if refreshed is not None else 0
        if t0 is not None:
            self.last_poll_ms = (time.perf_counter() - t0) * 1e3
            self.polled.emit(new, self.last_poll_ms)
        if new:
            self._got_rows = True
            if self.timer.isActive() and self.timer.remainingTime() > self.fast_ms:
                self._interval = self.fast_ms      # rows are arriving: look again soon
                self.timer.start(self._interval)
        return new

    def _look_failed(self, entry, exc) -> None:
        self._looking.discard(entry.key)
        w = self._watch.get(entry.key)
        if w is None or isinstance(exc, ReaderBusy):
            return
        if isinstance(exc, RunRestarted):
            self.runs.reopen(entry)           # the new run replaces this watch (runAdded)
            return
        message = f"{entry.path}: cannot read run status ({exc})"
        if message != w.error:      # reported once, not on every poll
            w.error = message
            self.runs.report_read_error(entry, message)

    def status(self, entry):
        """The last status read for ``entry`` (None before the first poll)."""
        w = self._watch.get(entry.key)
        return w.status if w else None

    def status_text(self, entry) -> str:
        st = self.status(entry)
        return entry.with_notice(st.describe(clock=True)) if st is not None else entry.status_text()

    def any_live(self) -> bool:
        return any(w.status is not None and w.status.state == RunState.LIVE for w in self._watch.values())

    def _on_added(self, entry) -> None:
        self._watch.setdefault(entry.key, _Watch())
        if not self.watcher.addPath(str(entry.path)):
            self._unwatched.add(entry.key)
        if self.timer.isActive():           # look at the new run soon, whatever the pace was
            self._interval = self.fast_ms
            self.timer.start(self._interval)
        self._adopt_new_metrics()

    def _on_removed(self, entry) -> None:
        self._watch.pop(entry.key, None)
        self._looking.discard(entry.key)
        self._unwatched.discard(entry.key)
        if not any(e.path == entry.path for e in self.runs.runs() if e is not entry):
            self.watcher.removePath(str(entry.path))

    def _on_updated(self, entry, n) -> None:
        self._adopt_new_metrics()

    # ------------------------------------------------------------ metrics seen mid-run
    def _adopt_new_metrics(self) -> None:
        """Plot metrics that appeared after opening, unless the user picked metrics by hand."""
        if self.view is None or self._user_picked_metrics:
            return
        wanted = default_metrics(self.runs.metric_names(), declared=self.runs.declared_roles())
        if wanted != self.view.metrics:
            self._setting_metrics = True
            try:
                self.view.set_metrics(wanted)
            finally:
                self._setting_metrics = False

    def _on_metrics_changed(self, names) -> None:
        # A change that is not the default choice (ours or the window's at open) is the user's.
        if not self._setting_metrics and list(names) != default_metrics(self.runs.metric_names(), declared=self.runs.declared_roles()):
            self._user_picked_metrics = True

    # ------------------------------------------------------------ follow
    def set_follow(self, on: bool) -> None:
        on = bool(on)
        if on and self.view is not None and self.view.step_range is not None:
            self.view.reset_view()          # emits stepRangeChanged(None): plots auto-range again
        if on != self.follow:
            self.follow = on
            self.followChanged.emit(on)

    def _on_step_range(self, rng) -> None:
        if rng is not None:
            self.set_follow(False)          # the user panned / zoomed, or jumped to a finding
        elif not self.follow:
            self.set_follow(True)           # "Reset view" brings the newest data back too
