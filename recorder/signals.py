"""SIGTERM and SIGHUP: save the run, then let the process's own handling go on.

SLURM and Kubernetes send SIGTERM on preemption and time-out, a closing terminal sends SIGHUP.
Left alone, the default action kills the process with up to a flush interval of rows unwritten
and the run reads as live, then stale. While a recorder is open, one handler per signal
(installed from the main thread only, as Python requires) flushes every open recorder, marks
each run ``terminated (SIGTERM) at step N``, and then chains:

* to the handler that was installed before (the user's, Lightning's, submitit's ...), which
  decides what happens next (it may exit, requeue, or let training go on);
* or, when that was the default action, restores it and sends the signal again, so the
  process ends exactly as it would have (killed by the signal: exit status 128 + signum);
* an ignored signal (``SIG_IGN``) stays ignored: the run goes on and nothing is marked.

The previous handler is put back when the last recorder closes (if ours is still installed).
Nothing here runs per step.
"""
from __future__ import annotations

import os
import signal
import threading
import weakref

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
FLUSH_TIMEOUT = 10.0   # preemption grace periods are ~30 s (SLURM KillWait, Kubernetes default)

_recorders: "weakref.WeakSet" = weakref.WeakSet()
_previous: dict = {}   # signum -> the handler ours replaced
_lock = threading.Lock()
_owner_pid = os.getpid()   # the process whose recorders the handler saves (see _handle)


def _fresh_lock_in_child() -> None:
    # A fork while another thread held _lock (a dropped Recorder's unregister) left the child a lock
    # nobody will release: its SIGTERM handler then blocked in _handle and the worker never died
    # (test_a_forked_child_does_not_write_its_parents_run timed out once in CI under load).
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


def register(recorder) -> bool:
    """Watch the signals for ``recorder`` (installs the handlers on first use, main thread only).
    False when none of ours is installed and this is not the main thread: the signals go past."""
    global _owner_pid
    with _lock:
        if os.getpid() != _owner_pid:   # first recorder of a forked child: its own recorders only
            _owner_pid = os.getpid()
            _recorders.clear()
        _recorders.add(recorder)
        if threading.current_thread() is not threading.main_thread():
            return not SIGNALS or any(signal.getsignal(signum) is _handle for signum in SIGNALS)
        for signum in SIGNALS:
            try:
                previous = signal.getsignal(signum)
                if previous is _handle:
                    continue   # ours, still installed
                if previous is None or previous == signal.SIG_IGN:
                    continue   # installed outside Python (cannot be chained), or ignored on purpose
                # Not installed yet, or replaced since (a framework's handler, or ours left over
                # by a recorder dropped unclosed: _recorders is weak): ours goes first, chaining to it.
                signal.signal(signum, _handle)
            except (ValueError, OSError):   # not the main interpreter, or not supported here
                continue
            _previous[signum] = previous
        return True


def unregister(recorder) -> None:
    """Forget ``recorder``; the last one out puts the previous handlers back (main thread only)."""
    with _lock:
        _recorders.discard(recorder)
        if len(_recorders) or threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in list(_previous.items()):
            try:
                if signal.getsignal(signum) is _handle:   # someone installed theirs after us: keep it
                    signal.signal(signum, previous)
            except (ValueError, OSError):
                continue
            del _previous[signum]


def _handle(signum, frame) -> None:
    name = signal.Signals(signum).name
    # A forked child (a DataLoader worker) inherits this handler and copies of the recorders:
    # their files belong to the parent, so the child only passes the signal on.
    recorders = list(_recorders) if os.getpid() == _owner_pid else []
    for recorder in recorders:
        try:
            recorder._on_signal(name, frame)
        except Exception:  # noqa: BLE001 - saving the run must never stop the signal's effect
            pass
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # The default action: put it back and let the signal do what it would have done.
    with _lock:
        _previous.pop(signum, None)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
