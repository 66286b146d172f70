"""File access of the app, off the GUI thread and one reader per file.

Two rules keep the window responsive and the reads correct:

- **One HDF5 handle per file, used by one thread at a time.** HDF5 is not safe for two
  handles of one file in one process while a writer appends (SWMR refresh on one handle
  corrupts the other's cache: "can't insert duplicate key", then empty panels). Every open run
  is a :class:`GuardedRun`: the one :class:`~trainspect.analysis.Run` of that file behind a
  lock that every read takes. The advisor, the live tail and the panels all share it.
- **Slow work runs on background threads.** :class:`BackgroundReads` runs opens, refreshes,
  status polls and diagnoses on a few daemon threads and hands the results to the GUI thread
  through a queued signal. The GUI thread waits at most ``GUI_WAIT_S`` for a file another
  thread is reading and then gets :class:`ReaderBusy` instead of freezing.

Nothing here imports QtWidgets or h5py (the model layer stays widget-free).
"""
from __future__ import annotations

import contextlib
import functools
import queue
import threading

from PySide6.QtCore import QObject, Signal

from trainspect.analysis import RunFileError

from ..restarts import Origin

GUI_WAIT_S = 0.25     # the GUI thread gives up on a busy file after this long (no frozen window)
IO_THREADS = 4        # files read at once; one hung file leaves the others working
# Set once when the Run is opened and never changed: readable without the file's lock.
PLAIN_ATTRIBUTES = frozenset({"path", "name", "meta", "config", "params", "modules"})


class ReaderBusy(RunFileError):
    """The GUI thread did not get a file that a background read holds (try again later)."""


def on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class GuardedRun:
    """A :class:`~trainspect.analysis.Run` whose every use holds the file's lock.

    Attribute reads and method calls are forwarded; the lock is re-entrant, so a guarded
    method may call others. Background threads wait for the lock as long as it takes; the
    GUI thread waits ``GUI_WAIT_S`` and then raises :class:`ReaderBusy`.
    """

    __slots__ = ("_run", "_lock", "_closing", "origin")

    def __init__(self, run):
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_lock", threading.RLock())
        object.__setattr__(self, "_closing", False)
        object.__setattr__(self, "origin", None)   # what the file was when opened (see restarts)

    def remember_origin(self, identity) -> None:
        """Note the file's identity (taken before it was opened) and its writer sessions now:
        a later look compares them to tell a resumed or replaced run (``restarts``)."""
        object.__setattr__(self, "origin", Origin(identity, self.sessions))

    @property
    def closed(self) -> bool:
        """Closing was asked for (the file itself stays open while a hung read holds it)."""
        return self._closing

    @property
    def unguarded(self):
        """The Run itself (only while holding :meth:`locked`)."""
        return self._run

    def locked(self, gui_wait_s: float = GUI_WAIT_S):
        """``with guarded.locked(): ...`` -- several reads as one step (no refresh in between)."""
        return _Held(self, gui_wait_s)

    def _acquire(self, gui_wait_s: float = GUI_WAIT_S) -> None:
        timeout = gui_wait_s if on_gui_thread() else -1
        if not self._lock.acquire(timeout=timeout):
            raise ReaderBusy(f"{self._run.path}: busy (another read of this file is in progress)")

    def __getattr__(self, name):
        run = self._run
        if name in PLAIN_ATTRIBUTES:
            return getattr(run, name)
        self._acquire()
        try:
            value = getattr(run, name)   # properties (status, start_time, ...) read the file
        finally:
            self._lock.release()
        if not callable(value):
            return value

        def guarded_call(*args, **kwargs):
            self._acquire()
            try:
                return value(*args, **kwargs)
            finally:
                self._lock.release()

        return guarded_call

    def __setattr__(self, name, value):
        raise AttributeError("a GuardedRun is read-only")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        # Closing waits for a running read whatever the thread: a closed handle mid-read
        # would crash HDF5. A hung read keeps its file open; the caller carries on.
        object.__setattr__(self, "_closing", True)
        if self._lock.acquire(timeout=GUI_WAIT_S if on_gui_thread() else -1):
            try:
                self._run.close()
            finally:
                self._lock.release()

    def __repr__(self):
        return f"Guarded{self._run!r}"


class _Held:
    def __init__(self, guarded: GuardedRun, gui_wait_s: float):
        self.guarded, self.gui_wait_s = guarded, gui_wait_s

    def __enter__(self):
        self.guarded._acquire(self.gui_wait_s)
        return self.guarded.unguarded

    def __exit__(self, *exc):
        self.guarded._lock.release()


class BackgroundReads(QObject):
    """A few daemon threads running file work; results come back on the GUI thread.

    ``submit(work, done, failed)``: ``work()`` runs on a worker; then ``done(result)`` or
    ``failed(exc)`` runs on the thread that owns this object (the GUI thread). Daemon threads:
    a read that never returns cannot keep the app from quitting.
    """

    _delivered = Signal(object)   # a zero-argument callable to run on the GUI thread

    def __init__(self, parent=None, threads: int = IO_THREADS):
        super().__init__(parent)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._n_threads = max(1, int(threads))
        self._threads: list[threading.Thread] = []
        self._outstanding = 0            # submitted, result not yet handed over (GUI thread only)
        self._stopped = False
        self._delivered.connect(self._deliver)

    def submit(self, work, done=None, failed=None) -> None:
        if self._stopped:
            return
        self._outstanding += 1
        self._jobs.put((work, done, failed))
        while len(self._threads) < self._n_threads:   # started on first use, idle ones just wait
            t = threading.Thread(target=self._serve, name=f"trainspect-reader-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def outstanding(self) -> int:
        """Jobs submitted whose result has not reached the GUI thread yet (0 once stopped:
        nothing more will arrive)."""
        return 0 if self._stopped else self._outstanding

    def stop(self, wait_s: float = 0.0) -> bool:
        """No new jobs, no more results; wait up to ``wait_s`` for running ones (the window is
        closing: a read still inside HDF5 while Python shuts down can crash the process).
        True when none is running any more."""
        import time

        self._stopped = True
        for _ in self._threads:
            self._jobs.put(None)         # each idle thread takes one and ends
        # Threads must be gone before Python exits: Qt adopted them when they emitted, and an
        # adopted thread still alive at exit made the process crash (1 exit in 3).
        deadline = time.monotonic() + wait_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            work, done, failed = job
            if self._stopped:
                continue
            try:
                result, error = work(), None
            except Exception as exc:   # reported on the GUI thread, never lost
                result, error = None, exc
            if self._stopped:
                continue
            try:
                # Bound now: the loop reuses these names for the next job before the GUI runs this.
                self._delivered.emit(functools.partial(self._finish, done, failed, result, error))
            except RuntimeError:
                return                     # the app is gone: nobody left to tell
            del job, work, done, failed, result, error   # an idle thread must not keep a closed run alive

    def _deliver(self, callback) -> None:
        callback()

    def _finish(self, done, failed, result, error) -> None:
        self._outstanding -= 1
        if error is None:
            if done is not None:
                done(result)
        elif failed is not None:
            failed(error)


class RunClosed(RunFileError):
    """The run was closed while a read for it waited: nobody wants the answer any more."""


def locked_read(run: GuardedRun, work, also=()):
    """``work()`` holding ``run``'s lock (a background reader's job): the reads inside it are
    one step, and a generator a guarded call returns is also consumed under the lock.
    ``also``: other runs ``work`` reads (ranks open as their own rows); every lock is taken in
    path order, so two reads holding the same files can never wait for each other."""
    runs = sorted({id(r): r for r in (run, *also) if r is not None}.values(), key=lambda r: str(r.path))
    with contextlib.ExitStack() as held:
        for r in runs:
            held.enter_context(r.locked())
        if run.closed:
            raise RunClosed(f"{run.path}: closed")
        return work()


class LatestReads:
    """Background reads where only the newest request of each kind counts (GUI thread only).

    ``request(kind, key, work, done, failed)`` runs ``work()`` on the readers of ``io`` (a
    :class:`BackgroundReads`); ``done(result)`` / ``failed(exc)`` then run on the GUI thread,
    unless a newer request of the same ``kind`` came meanwhile: the user moved on to another
    run or layer, and the stale answer is dropped. ``key`` names the file: at most one read per
    (kind, file) is in flight, a newer one waits for it (and replaces an older waiting one), so
    a read hung inside HDF5 ties up one reader per kind instead of piling up on every reader.
    """

    def __init__(self, io: BackgroundReads):
        self.io = io
        self._latest: dict = {}      # kind -> token of the newest request not answered yet
        self._running: set = set()   # (kind, key) with a read in flight
        self._waiting: dict = {}     # (kind, key) -> (token, work, done, failed)

    def request(self, kind, key, work, done, failed=None) -> None:
        token = object()
        self._latest[kind] = token
        slot = (kind, key)
        if slot in self._running:
            self._waiting[slot] = (token, work, done, failed)
        else:
            self._start(slot, token, work, done, failed)

    def pending(self, kind=None) -> bool:
        """A request (of ``kind``, or any) whose answer has not been shown yet."""
        return bool(self._latest) if kind is None else kind in self._latest

    def forget(self, kind=None) -> None:
        """Drop the answers still to come (of ``kind``, or all): the panel let go of its run."""
        if kind is None:
            self._latest.clear()
        else:
            self._latest.pop(kind, None)

    def _start(self, slot, token, work, done, failed) -> None:
        self._running.add(slot)
        self.io.submit(work, lambda result: self._finish(slot, token, done, result),
                       lambda exc: self._finish(slot, token, failed, exc))

    def _finish(self, slot, token, callback, value) -> None:
        self._running.discard(slot)
        waiting = self._waiting.pop(slot, None)
        if waiting is not None and self._latest.get(slot[0]) is waiting[0]:
            self._start(slot, *waiting)          # (a stale waiting request is not even read)
        if self._latest.get(slot[0]) is not token:
            return                               # stale: a newer request of this kind exists
        del self._latest[slot[0]]
        if callback is not None and not isinstance(value, RunClosed):
            callback(value)


def release_freed_memory() -> None:
    """Hand memory freed by closed runs back to the system.

    glibc keeps freed heap pages for reuse: closing 50 runs freed their arrays (no object
    left) but the app's RSS stayed at 542 MB; ``malloc_trim`` brought it to ~195 MB. (A fixed
    mmap threshold instead did not: 517 MB.) A no-op where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
