"""The app's models: plain Python state with Qt signals, no widgets.

Widgets are built from these models and listen to them; tests drive the models and read the
widgets. Nothing here imports QtWidgets or pyqtgraph (checked by a test), and all file access
goes through ``analysis`` (never h5py).

- :class:`RunsModel`: the rows of the run list (opening / open / failed), their colours, the
  current run. Opening and refreshing run on background threads (``open_async``,
  ``refresh_async``) and emit ``runAdded`` / ``runUpdated`` on the GUI thread.
- :class:`ViewState`: what the plots show: metrics, x axis, smoothing, log-y, step range,
  highlighted span, heatmap statistic, selected layers.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer, Signal

from trainspect.analysis import RunFileError, open_run

from ..vocab import META_ROLES, NO_WRITER, SYS_GRAD_NORM, SYS_LR, is_sys, loss_roles, writer_holds
from .. import rank_view
from ..run_colours import PALETTE, extra_color  # noqa: F401 - PALETTE is read from here by the widgets
from ..restarts import file_identity, restart_between
from .run_io import BackgroundReads, GuardedRun, ReaderBusy, release_freed_memory

X_MODES = ("step", "wall", "relative")
DEFAULT_MAX_METRICS = 4
# A file opened in a live run's first moments (created, layout not written or not flushed
# yet) fails with one of these; the model retries it instead of failing for good.
STARTING_ERRORS = ("run is starting", "truncated run file", "cannot open as HDF5")
START_WAIT_S = 30.0        # give up (and show the error) after this long
START_RETRY_MS = 250
REOPEN_WAIT_S = 5.0        # a restarted file that stays unreadable this long is reported
REOPEN_CLOSE_WAIT_S = 5.0  # a read of the old handle not back by then is abandoned: the file is reopened anyway
ARRIVAL_BATCH_MS = 250     # runs opened in a burst are announced together, at most this often,
ARRIVAL_BUDGET_S = 0.1     # with at most this much panel work per batch
FIRST_OPEN_GRACE_MS = 400  # a batch opens its first file alone for this long (first paint sooner)
MISSED_RETRY_MS = 200
TRIM_DELAY_MS = 100        # after runs close, give the panels this long to drop their data      # a panel read that found its file busy is asked for again after this
LOADING, READY, FAILED = "loading", "ready", "failed"    # RunEntry.state


class RunEntry:
    """One row of the run list: a file being opened, an open run, or one that failed.

    ``state``: ``LOADING`` (a background thread is opening it), ``READY`` (``run`` is its
    :class:`~.run_io.GuardedRun`) or ``FAILED`` (``error`` says why). A ready run whose later
    reads fail keeps its data and shows ``error`` too. ``status`` and ``names`` are the last
    ones a background read saw: painting a row or listing metrics never touches the file.
    """

    def __init__(self, path, color: str, run=None):
        self.path = Path(path)
        self.key = _key(self.path)
        self.color = color
        self.run = run
        self.state = READY if run is not None else LOADING
        self.error = ""
        self.status = None           # last RunStatus read
        self.names: list[str] = []   # metric names, first-logged order
        self.read_missed = False     # a GUI read found the file busy: ask again soon
        self.notice = ""             # what happened to the file: "resumed (writer session 2)"
        self.start_time = 0.0        # when the run started (origin of the relative time axis), read at open

    @property
    def ready(self) -> bool:
        return self.state == READY

    @property
    def name(self) -> str:
        return self.run.name if self.run is not None else self.path.name

    def status_text(self) -> str:
        if self.state == FAILED:
            return self.error
        if self.state == LOADING:
            return self.error or "opening…"
        text = self.with_notice(self.status.describe(clock=True) if self.status is not None else "")
        return f"{text} — {self.error}" if self.error else text

    def with_notice(self, text: str) -> str:
        """``text`` (a run state) after the notice of a resume or replacement, if any."""
        return f"{self.notice} · {text}" if self.notice and text else (self.notice or text)

    def __repr__(self):
        return f"RunEntry({self.name!r}, {self.color}, {self.state})"


def read_new_run(path):
    """Open ``path`` and read what its first paint needs (a background thread's job): the run,
    its metric names, its state and its start time (the GUI thread never reads the file)."""
    identity = file_identity(path)     # before opening: a file replaced meanwhile reads as a restart later
    # The one reader of this file (see run_io). It keeps no metric's points: the plots keep a
    # bounded level of detail of what they show (widgets/scalar_plots.Curve).
    run = GuardedRun(open_run(path, keep_points=False))
    try:
        names = run.scalar_names()     # read the scalar table now: a damaged one fails here, not in a paint
        status = run.status()
        start = run.start_time
        run.remember_origin(identity)
    except BaseException:
        run.close()
        raise
    if not math.isfinite(start):   # a run without a state start time: the one its metadata says
        start = float(run.meta.get("start_time") or 0.0)
    return run, names, status, float(start)


def refresh_run(run):
    """Rows added since the last look, and the metric names if new ones appeared."""
    with run.locked() as r:
        n = r.refresh()
        return n, (r.scalar_names() if n else None)


class RunsModel(QObject):
    """The runs open in the app. Errors never raise into the UI: they are emitted.

    ``open_async`` / ``refresh_async`` (what the window uses) read on background threads;
    ``open`` / ``poll`` do the same work blocking (scripts, tests)."""

    runAdded = Signal(object)          # RunEntry, now READY
    runRemoved = Signal(object)        # RunEntry (already closed)
    runUpdated = Signal(object, int)   # RunEntry, number of new rows from refresh()
    currentChanged = Signal(object)    # RunEntry or None
    errorOccurred = Signal(str, str)   # path, message (names the file)
    runStarting = Signal(str, str)     # path, message: waiting for a just-created run file
    rowsChanged = Signal()             # a row appeared, went away or changed state
    runRestarted = Signal(object, str)  # RunEntry, message: its file was resumed or replaced, shown anew

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[RunEntry] = []
        self._current: RunEntry | None = None
        self._starting: dict[str, float] = {}     # key -> give-up time (monotonic)
        self._make_current: set[str] = set()      # keys of the latest batch: the first to load becomes current
        self._refreshing: set[str] = set()        # keys with a refresh in flight
        self._reopening: dict[str, float] = {}    # key -> give-up time of a reopen in flight
        self.io = BackgroundReads(self)
        self._arrived: list = []                  # (entry, make current) opened, not announced yet
        self._arrival_timer = QTimer(self)
        self._arrival_timer.setInterval(ARRIVAL_BATCH_MS)
        self._arrival_timer.timeout.connect(self._add_arrived)
        self._trim_timer = QTimer(self)           # closing runs returns their memory (once per burst)
        self._trim_timer.setSingleShot(True)
        self._trim_timer.setInterval(TRIM_DELAY_MS)
        self._trim_timer.timeout.connect(release_freed_memory)
        self._missed_timer = QTimer(self)         # GUI reads that found a file busy: retry
        self._missed_timer.setInterval(MISSED_RETRY_MS)
        self._missed_timer.timeout.connect(self._retry_missed)
        self._missed_timer.start()

    # ------------------------------------------------------------ queries
    def runs(self) -> list[RunEntry]:
        """The open (READY) runs, in the order they were opened."""
        return [e for e in self._rows if e.state == READY]

    def rows(self) -> list[RunEntry]:
        """Every row of the run list: loading, open and failed."""
        return list(self._rows)

    def loading(self) -> list[RunEntry]:
        """Rows not open yet (being read, or read and waiting for their batch)."""
        return [e for e in self._rows if e.state == LOADING]

    def __len__(self):
        return len(self.runs())

    def find(self, path) -> RunEntry | None:
        key = _key(Path(path))
        return next((e for e in self._rows if e.key == key), None)

    @property
    def current(self) -> RunEntry | None:
        return self._current

    def declared_roles(self) -> dict:
        """Loss roles the runs declared (Recorder(..., roles=...)); the current run's win."""
        roles: dict = {}
        for e in sorted(self.runs(), key=lambda e: e is self.current):
            roles.update((e.run.meta or {}).get(META_ROLES) or {})
        return roles

    def metric_names(self) -> list[str]:
        """Union of the metrics of all open runs, in first-seen order."""
        seen: dict[str, None] = {}
        for e in self.runs():
            seen.update(dict.fromkeys(e.names))
        return list(seen)

    # ------------------------------------------------------------ opening
    def open(self, path) -> RunEntry | None:
        """Open a run file now (blocking); returns the entry, or None after ``errorOccurred``."""
        path = Path(path)
        existing = self.find(path)
        if existing is not None and existing.state != FAILED:
            if existing.ready:
                self.set_current(existing)
            return existing if existing.ready else None
        if existing is not None:
            self._rows.remove(existing)
        entry = RunEntry(path, self._free_color())
        self._rows.append(entry)
        try:
            result = read_new_run(path)
        except Exception as exc:
            self._open_failed(entry, exc, blocking=True)
            return entry if entry.ready else None
        self._opened(entry, result, make_current=True)
        return entry

    def open_async(self, paths) -> list[RunEntry]:
        """Add a row per file at once and open them on background threads.

        The first one of the batch that opens becomes the current run (once: a batch of 50
        runs does not switch the panels 50 times); the rest stream in. Returns the rows."""
        rows, batch, new = [], set(), []
        for p in paths:
            path = Path(p)
            entry = self.find(path)
            if entry is not None and entry.state != FAILED:
                if entry.ready and not batch:
                    self.set_current(entry)
                rows.append(entry)
                continue
            if entry is None:
                entry = RunEntry(path, self._free_color())
                self._rows.append(entry)
            entry.state, entry.error = LOADING, ""
            batch.add(entry.key)
            rows.append(entry)
            new.append(entry)
        if new:
            self._make_current = batch
            self.rowsChanged.emit()
            # The first file alone first: reads of one file are not shared with 49 others
            # (HDF5 serialises them), so it opens, and paints, as fast as a single run would.
            first, rest = new[0], new[1:]
            if rest:
                pending = {"rest": rest}
                def open_rest():
                    for e in pending.pop("rest", ()):
                        if e in self._rows and e.state == LOADING:
                            self._submit_open(e)
                self._submit_open(first, then=open_rest)
                QTimer.singleShot(FIRST_OPEN_GRACE_MS, self, open_rest)   # a slow first file holds no one up
            else:
                self._submit_open(first)
        return rows

    def _submit_open(self, entry: RunEntry, then=None) -> None:
        def done(result):
            self._opened(entry, result)
            then and then()

        def failed(exc):
            self._open_failed(entry, exc)
            then and then()

        self.io.submit(self._opener(entry), done, failed)

    def _opener(self, entry: RunEntry):
        """The background job opening ``entry``'s file: another row's read of it as a rank of
        its own run (``rank_view``) lets go of it first, so the app has one handle per file."""
        others = [e for e in self.runs() if e is not entry]

        def open_it():
            rank_view.let_go(entry.key, others)
            return read_new_run(entry.path)

        return open_it

    def _opened(self, entry: RunEntry, result, make_current: bool = False) -> None:
        run, names, status, start = result
        if entry not in self._rows:          # closed while it was opening
            run.close()
            return
        self._starting.pop(entry.key, None)
        entry.run, entry.names, entry.status, entry.start_time = run, list(names), status, start
        self._arrived.append((entry, make_current))
        if make_current or not self._arrival_timer.isActive():
            self._add_arrived()              # the first of a burst at once: first paint does not wait
            self._arrival_timer.start()      # the rest together: one repaint per batch, not per run

    def _add_arrived(self) -> None:
        """Runs opened since the last batch become READY and are announced (``runAdded``).

        At most ``ARRIVAL_BUDGET_S`` of panel work per batch: 50 runs stream in over a few
        seconds, the window repainting and answering in between, instead of one long freeze."""
        if not self._arrived:
            self._arrival_timer.stop()
            return
        t0 = time.perf_counter()
        added = False
        while self._arrived and (not added or time.perf_counter() - t0 < ARRIVAL_BUDGET_S):
            entry, make_current = self._arrived.pop(0)
            if entry not in self._rows:
                continue
            entry.state, entry.error = READY, ""
            rank_view.settled(entry.key)
            added = True
            self.runAdded.emit(entry)
            if make_current or entry.key in self._make_current:
                self._make_current = set()
                self.set_current(entry)
        if added:
            self.rowsChanged.emit()

    def _open_failed(self, entry: RunEntry, exc: Exception, blocking: bool = False) -> None:
        if entry not in self._rows:
            return
        message = str(exc) if isinstance(exc, RunFileError) else \
            f"{entry.path}: cannot read run file ({type(exc).__name__}: {exc})"
        now = time.monotonic()
        # Only while a writer holds the run's lock: a damaged copy made a moment ago (scp, rsync)
        # waited 30 s and then read "the run did not start" instead of info's "truncated run file".
        if _is_starting(exc) and (entry.key in self._starting or _recently_written(entry.path)) \
                and _writer_may_hold(entry.path):
            # A live run in its first second: wait for the writer, do not fail for good.
            give_up = self._starting.setdefault(entry.key, now + START_WAIT_S)
            if now < give_up:
                if blocking:
                    self._make_current.add(entry.key)
                if entry.error == "":
                    entry.error = f"{entry.path.name}: run is starting, waiting for the writer…"
                    self.runStarting.emit(str(entry.path), f"{entry.path}: run is starting, waiting for the writer…")
                    self.rowsChanged.emit()
                QTimer.singleShot(START_RETRY_MS, self, lambda: entry in self._rows and self._submit_open(entry))
                return
            message = f"{entry.path}: the run did not start within {START_WAIT_S:.0f} s"
        self._starting.pop(entry.key, None)
        self._make_current.discard(entry.key)
        rank_view.settled(entry.key)
        if blocking:                         # the blocking API leaves no row behind
            self._rows.remove(entry)
        else:
            entry.state, entry.error = FAILED, message
            self._repack_loading_colors()
            self.rowsChanged.emit()
        self.errorOccurred.emit(str(entry.path), message)

    def _repack_loading_colors(self) -> None:
        """A file that failed gives its colour back: the rows still opening take the first free
        ones, in row order (a good run opened after three bad files was the 4th colour, pink,
        with the 1st free; trial14 L6). Open runs keep theirs: their curves are drawn."""
        loading = [e for e in self._rows if e.state == LOADING]
        for e in loading:
            e.color = None
        for e in loading:
            e.color = self._free_color()

    # ------------------------------------------------------------ closing
    def remove(self, entry: RunEntry) -> None:
        if entry not in self._rows:
            return
        self._rows.remove(entry)
        self._starting.pop(entry.key, None)
        rank_view.settled(entry.key)
        was_ready = entry.state == READY
        try:
            if entry.run is not None:
                entry.run.close()
        finally:
            if self._current is entry:
                runs = self.runs()
                self.set_current(runs[-1] if runs else None)
            self.rowsChanged.emit()
            if was_ready:
                self.runRemoved.emit(entry)
                self._trim_timer.start()     # after the panels dropped their copies too

    def trim_soon(self) -> None:
        """Hand freed memory back to the system shortly (after a burst of large transient reads)."""
        if not self._trim_timer.isActive():
            self._trim_timer.start()

    def close_all(self) -> None:
        self.cancel_starting()
        for e in list(self._rows):
            self.remove(e)

    def starting(self) -> list[Path]:
        """Files waiting for their writer to start (see ``runStarting``)."""
        return [e.path for e in self._rows if e.key in self._starting]

    def cancel_starting(self) -> None:
        for e in [e for e in self._rows if e.key in self._starting]:
            self.remove(e)
        self._starting.clear()

    def set_current(self, entry: RunEntry | None) -> None:
        if entry is self._current:
            return
        self._current = entry
        self.currentChanged.emit(entry)

    def wait_loaded(self, timeout_s: float = 60.0) -> bool:
        """Process events until no file is opening and no read is in flight (tests, screenshots,
        ``open --screenshot``). True when everything finished in time."""
        deadline = time.monotonic() + timeout_s
        while self.loading() or self.io.outstanding():
            if time.monotonic() > deadline:
                return False
            QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
            time.sleep(0.002)
        QCoreApplication.processEvents()   # what the last results scheduled (row list, recent menu)
        return True

    # ------------------------------------------------------------ live data
    def poll(self, entries=None) -> int:
        """Pick up rows the writers added since last time (blocking); returns the new rows."""
        total = 0
        for e in list(self.runs() if entries is None else entries):
            try:
                result = refresh_run(e.run)
            except Exception as exc:
                self._refresh_failed(e, exc)
                continue
            total += self.apply_refresh(e, result)
        return total

    def refresh_async(self, entries=None) -> None:
        """``poll`` on background threads; a run whose last refresh has not returned is skipped
        (a hung file does not pile up reads)."""
        for e in list(self.runs() if entries is None else entries):
            if e.key in self._refreshing or not e.ready:
                continue
            self._refreshing.add(e.key)
            self.io.submit(lambda e=e: refresh_run(e.run),
                           lambda result, e=e: self._refresh_done(e, result),
                           lambda exc, e=e: self._refresh_failed(e, exc))

    def refreshing(self, entry) -> bool:
        return entry.key in self._refreshing

    def _refresh_done(self, e: RunEntry, result) -> None:
        self._refreshing.discard(e.key)
        self.apply_refresh(e, result)

    def apply_refresh(self, e: RunEntry, result) -> int:
        """Take in a refresh result ``(new rows, names or None)`` read off the GUI thread."""
        n, names = result
        if e.state != READY or e not in self._rows:
            return 0
        if e.error:
            e.error = ""
            self.rowsChanged.emit()
        if names is not None:
            e.names = list(names)
        if n:
            self.runUpdated.emit(e, n)
        return n

    def _refresh_failed(self, e: RunEntry, exc: Exception) -> None:
        self._refreshing.discard(e.key)
        if isinstance(exc, ReaderBusy) or e not in self._rows:
            return
        message = f"{e.path}: refresh failed ({exc})"
        self.report_read_error(e, message)

    # ------------------------------------------------------------ restarted files
    def reopen(self, entry: RunEntry) -> None:
        """``entry``'s file was resumed or replaced under its reader (``LiveTail`` saw it): read
        the path anew and show the new run in the same row. The row turns "opening" and every
        panel lets go of the old file (``runRemoved``); a background reader closes the old
        handle first (HDF5 shares one open file per process: a second handle opened beside
        the stale one would read the stale layout) and opens the path; then the panels show the
        new run (``runAdded``) and ``runRestarted`` says what happened."""
        if entry not in self._rows or not entry.ready:
            return
        old = entry.run
        entry.state, entry.error = LOADING, ""
        self.runRemoved.emit(entry)
        self.rowsChanged.emit()
        step = {"opening": False, "abandoned": False}

        def open_new(abandoned: bool) -> None:
            if step["opening"] or entry not in self._rows:
                return
            step.update(opening=True, abandoned=abandoned)
            self._reopening[entry.key] = time.monotonic() + REOPEN_WAIT_S
            self._submit_reopen(entry, old, abandoned)

        def old_closed(_) -> None:
            if not step["opening"]:
                open_new(False)
            elif step["abandoned"]:          # the abandoned read ended at last: read again without it
                self._read_again(entry, old)

        # The old handle is closed first; a read of it that never returns must not keep the row
        # "opening" forever: after REOPEN_CLOSE_WAIT_S the handle is left to that read.
        self.io.submit(old.close, old_closed, old_closed)
        QTimer.singleShot(int(REOPEN_CLOSE_WAIT_S * 1000), self, lambda: open_new(True))

    def _read_again(self, entry: RunEntry, old) -> None:
        """The run was reopened beside an old handle a hung read held (HDF5 shares one open
        file: the new handle may have seen the old layout); that handle is closed now."""
        if entry not in self._rows or entry.run is old:
            return
        if entry.ready:
            self.reopen(entry)
        elif entry.state == LOADING:
            QTimer.singleShot(START_RETRY_MS, self, lambda: self._read_again(entry, old))

    def _submit_reopen(self, entry: RunEntry, old, abandoned: bool = False) -> None:
        self.io.submit(self._opener(entry), lambda result: self._reopened(entry, old, result, abandoned),
                       lambda exc: self._reopen_failed(entry, old, exc, abandoned))

    def _reopened(self, entry: RunEntry, old, result, abandoned: bool = False) -> None:
        self._reopening.pop(entry.key, None)
        run, names, status, start = result
        if entry not in self._rows:          # closed meanwhile
            run.close()
            return
        restart = restart_between(entry.name, entry.path, old.origin, run.origin)
        entry.run, entry.names, entry.status, entry.start_time = run, list(names), status, start
        entry.state, entry.error = READY, ""
        rank_view.settled(entry.key)
        if restart is not None:
            entry.notice = restart.short
        self.runAdded.emit(entry)
        self.rowsChanged.emit()
        if entry is self._current:
            self.currentChanged.emit(entry)  # the tabs read the current run again
        message = restart.message if restart is not None else ""
        if abandoned:
            message = (f"{message} " if message else "") + (
                f"{entry.path}: a read of the previous file did not return within {REOPEN_CLOSE_WAIT_S:.0f} s; "
                "the run was reopened without waiting for it (read again once it returns).")
        if message:
            self.runRestarted.emit(entry, message)

    def _reopen_failed(self, entry: RunEntry, old, exc: Exception, abandoned: bool = False) -> None:
        # A writer resuming the file changes it under a reader for a moment: try again.
        if entry in self._rows and time.monotonic() < self._reopening.get(entry.key, 0.0):
            QTimer.singleShot(START_RETRY_MS, self, lambda: self._submit_reopen(entry, old, abandoned))
            return
        self._reopening.pop(entry.key, None)
        rank_view.settled(entry.key)
        if entry in self._rows:
            entry.state = FAILED
            entry.error = f"{entry.path}: the run was restarted and cannot be read again ({exc})"
            self.rowsChanged.emit()
            self.errorOccurred.emit(str(entry.path), entry.error)

    def report_read_error(self, e: RunEntry, message: str) -> None:
        """A read of an open run failed: its row says so (once), the data shown stays."""
        if message != e.error:
            e.error = message
            self.rowsChanged.emit()
            self.errorOccurred.emit(str(e.path), message)

    def _retry_missed(self) -> None:
        for e in self.runs():
            if e.read_missed:
                e.read_missed = False
                self.runUpdated.emit(e, 0)   # the panels ask for what they missed again

    def _free_color(self) -> str:
        used = {e.color for e in self._rows if e.state != FAILED and e.color is not None}
        for c in PALETTE:
            if c not in used:
                return c
        # More runs than palette colours: the 11th run used to repeat the 1st one's colour.
        # Golden-ratio hues at two lightness levels stay apart from each other.
        for k in range(1, 1000):
            c = extra_color(k)
            if c not in used:
                return c
        return PALETTE[len(self._rows) % len(PALETTE)]


def _key(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):   # a symlink loop (RuntimeError before Python 3.13): opening it says so
        return str(path.absolute())


def _is_starting(exc) -> bool:
    text = str(exc)     # a cut-short copy of a finished run: nothing will ever complete it
    return any(marker in text for marker in STARTING_ERRORS) and NO_WRITER not in text


def _writer_may_hold(path: Path) -> bool:
    """A writer holds the run's lock (or it cannot be told: then wait, as before)."""
    try:
        return bool(writer_holds(path))
    except Exception:  # noqa: BLE001 - an unreadable folder: no answer
        return True


def _recently_written(path: Path, within_s: float = START_WAIT_S) -> bool:
    """A writer is creating it now (an old half-copied file is not worth waiting for)."""
    try:
        return time.time() - path.stat().st_mtime < within_s
    except OSError:
        return False


def default_metrics(names: list[str], limit: int = DEFAULT_MAX_METRICS, declared: dict | None = None) -> list[str]:
    """What to plot when a run opens: the training and validation loss first (their roles,
    ``declared`` ones first), then other user metrics; the recorder's own series only if
    there is nothing else."""
    user = [n for n in names if not is_sys(n)]
    roles = loss_roles(user, declared)
    losses = [roles[r] for r in ("train", "val") if r in roles]
    rest = [n for n in user if n not in losses]
    chosen = (losses + rest)[:limit]
    if not chosen:
        chosen = [n for n in (SYS_GRAD_NORM, SYS_LR) if n in names][:limit]
    return chosen


MAX_MARKS = 400    # evidence steps marked on the plots of a focused finding (each plot merges its own)


class Mark(NamedTuple):
    """One step a focused finding's evidence names, marked on the plot of its series only."""
    series: str       # the evidence's series ("train/loss", "sys/grad_norm"; a layer stat is on no plot)
    step: float
    label: str        # what it marks: "loss spikes at step 40"
    detail: str = ""  # the evidence's sentence (the tooltip's second line)


def finding_marks(finding) -> list:
    """The :class:`Mark` of every step the evidence of ``finding`` names, on its own series."""
    what = str(getattr(finding, "symptom", "") or "evidence").replace("_", " ")
    out = []
    for ev in getattr(finding, "evidence", None) or []:
        for s in getattr(ev, "steps", None) or []:
            if s is None:
                continue
            try:
                step = float(s)
            except (TypeError, ValueError):
                continue
            if math.isfinite(step):
                shown_step = int(step) if step == int(step) else step
                out.append(Mark(ev.series, step, f"{what} at step {shown_step}", str(getattr(ev, "text", "") or "")))
    return out


def finding_span(finding):
    """(first, last) step of a finding as floats (one end missing: the other), None without."""
    first, last = finding.first_step, finding.last_step
    if first is None and last is None:
        return None
    first = last if first is None else first
    last = first if last is None else last
    return float(first), float(last)


def finding_window(span, last_step=None) -> tuple[float, float]:
    """The step range that shows a finding's ``span``: padded by 10 % (at least 5 steps), slid
    inside the run's steps, from 0 (or the span's own first step, if below) to ``last_step``.
    A finding at step 0 had shown steps -4..5, half of the plot empty."""
    first, last = float(span[0]), float(span[1])
    pad = max(5.0, 0.1 * (last - first))
    lo, hi = first - pad, last + pad
    floor = min(first, 0.0)
    ceil = float(last_step) if last_step is not None and last_step >= last else math.inf
    if lo < floor:
        lo, hi = floor, hi + (floor - lo)
    if hi > ceil:
        lo, hi = max(floor, lo - (hi - ceil)), ceil
    if hi <= lo:                       # a one-step run: nothing to slide within
        lo, hi = first - pad, last + pad
    return lo, hi


class ViewState(QObject):
    """What the plots show. Step ranges are in steps whatever the x axis shows."""

    metricsChanged = Signal(list)
    xModeChanged = Signal(str)
    smoothingChanged = Signal(float)
    logYChanged = Signal(bool)
    stepRangeChanged = Signal(object)      # (first, last) or None = show everything
    highlightChanged = Signal(object)      # (first, last) or None
    marksChanged = Signal(list)            # Marks: steps the focused finding's evidence names, on their series' plots
    heatmapStatChanged = Signal(str)
    selectedLayersChanged = Signal(list)
    findingFocused = Signal(object)        # the Finding
    combineLossesChanged = Signal(bool)    # train and val loss on one plot (or each on its own)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.metrics: list[str] = []
        self.x_mode = "step"
        self.smoothing = 0.6
        self.log_y = False
        self.step_range: tuple[float, float] | None = None
        self.highlight: tuple[float, float] | None = None
        self.marks: list[Mark] = []
        self.heatmap_stat = "grad_norm"
        self.selected_layers: list[str] = []
        # A run's training and validation loss, both plotted, share one plot (the overfitting
        # gap is seen as a gap, as in the report's "Losses"); off: each metric on its own plot.
        self.combine_losses = True

    def set_combine_losses(self, on: bool) -> None:
        if bool(on) != self.combine_losses:
            self.combine_losses = bool(on)
            self.combineLossesChanged.emit(self.combine_losses)

    def set_metrics(self, names) -> None:
        names = list(dict.fromkeys(names))
        if names != self.metrics:
            self.metrics = names
            self.metricsChanged.emit(list(names))

    def toggle_metric(self, name: str, on: bool) -> None:
        if on and name not in self.metrics:
            self.set_metrics(self.metrics + [name])
        elif not on and name in self.metrics:
            self.set_metrics([m for m in self.metrics if m != name])

    def set_x_mode(self, mode: str) -> None:
        if mode not in X_MODES:
            raise ValueError(f"x axis must be one of {X_MODES}, not {mode!r}")
        if mode != self.x_mode:
            self.x_mode = mode
            self.xModeChanged.emit(mode)

    def cycle_x_mode(self) -> None:
        self.set_x_mode(X_MODES[(X_MODES.index(self.x_mode) + 1) % len(X_MODES)])

    def set_smoothing(self, weight: float) -> None:
        weight = float(weight)
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {weight}")
        if weight != self.smoothing:
            self.smoothing = weight
            self.smoothingChanged.emit(weight)

    def set_log_y(self, on: bool) -> None:
        if bool(on) != self.log_y:
            self.log_y = bool(on)
            self.logYChanged.emit(self.log_y)

    def set_step_range(self, rng) -> None:
        rng = None if rng is None else (float(min(rng)), float(max(rng)))
        if rng != self.step_range:
            self.step_range = rng
            self.stepRangeChanged.emit(rng)

    def reset_view(self) -> None:
        self.step_range = None
        self.stepRangeChanged.emit(None)   # always: the widgets re-enable auto range

    def set_highlight(self, span) -> None:
        if span != self.highlight:
            self.highlight = span
            self.highlightChanged.emit(span)

    def set_marks(self, marks) -> None:
        """The Marks to draw, each on the plot of its series (sorted by step, each
        (series, step) once, at most ``MAX_MARKS``)."""
        seen = {}
        for m in marks:
            seen.setdefault((m.series, float(m.step)), Mark(m.series, float(m.step), m.label, m.detail))
        marks = sorted(seen.values(), key=lambda m: (m.step, m.series))[:MAX_MARKS]
        if marks != self.marks:
            self.marks = marks
            self.marksChanged.emit(list(marks))

    def set_heatmap_stat(self, name: str) -> None:
        if name != self.heatmap_stat:
            self.heatmap_stat = name
            self.heatmapStatChanged.emit(name)

    def set_selected_layers(self, layers) -> None:
        layers = list(dict.fromkeys(layers))
        if layers != self.selected_layers:
            self.selected_layers = layers
            self.selectedLayersChanged.emit(layers)

    def focus_finding(self, finding, layer_stats=(), last_step=None) -> None:
        """Jump to a finding: its step span (padded), highlighted; its layers selected.
        ``last_step``: the run's last step, which the view does not pass either."""
        span = finding_span(finding)
        self.set_highlight(span)
        if span is not None:
            self.set_step_range(finding_window(span, last_step))
        # the steps the evidence names (the spikes, the repeats of a cycle), each on the plot of
        # the series it was seen in (drawn on every plot, a grad-norm spike at step 50 was the one
        # clear mark on the loss, which had none there; trial14 M3)
        self.set_marks(finding_marks(finding))
        for ev in getattr(finding, "evidence", []):
            if ev.series in layer_stats:
                self.set_heatmap_stat(ev.series)
                break
        layers = list(finding.layers) or [ev.layer for ev in finding.evidence if getattr(ev, "layer", None)]
        self.set_selected_layers(layers)
        self.findingFocused.emit(finding)

    def refresh_finding(self, finding) -> None:
        """The focused finding was diagnosed again (a live run grew): its highlight and marks
        take its new span and steps; the step range the user looks at stays (a finding clicked
        at steps 13-17 kept that highlight while its span grew to 13-150; trial14 N3)."""
        self.set_highlight(finding_span(finding))
        self.set_marks(finding_marks(finding))
