"""Run the advisor (``analysis.diagnose``) if this build has it; never let it take the app down.

Diagnosis reads whole tables and can take seconds on big runs, so the panel runs it on a
worker thread and gets the result through a queued Qt signal. It reads through the run's
one :class:`~.run_io.GuardedRun` -- never a second HDF5 handle of the same file: two handles
read from two threads while the writer appends broke HDF5's cache ("can't insert duplicate
key") and left the panels empty.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

NOT_AVAILABLE = "advisor not available"


def load_diagnose():
    """``analysis.diagnose`` or None when the advisor is not part of this build."""
    try:
        from trainspect.analysis import diagnose
    except ImportError:
        return None
    return diagnose


def not_checked(run) -> list[str]:
    """What the advisor could not check in ``run`` (the instruments it lacks), as the lines
    ``trainspect diagnose`` prints under its findings; [] when nothing is missing."""
    try:
        from trainspect.analysis.advisor import coverage
        return coverage(run).lines()
    except Exception:   # no coverage in this build, or it failed: the findings still show
        return []


def diagnose_run(run, sweep_run=None, reuse=None) -> tuple[list | None, str, list]:
    """``(findings sorted by severity, message, not-checked lines)``; findings is None when it
    could not run.

    ``sweep_run``: an open LR range test (``trainspect.lr_range_test``'s run file); LR fixes then
    quote its suggested LR. A sweep itself is not diagnosed (it diverges on purpose): the
    message gives its suggestion. ``reuse``: the rank files open as rows (``rank_view.reuser``),
    read through their handle rather than opened again."""
    diagnose = load_diagnose()
    if diagnose is None:
        return None, NOT_AVAILABLE, []
    try:
        from trainspect.analysis.lr_range import is_sweep, read_sweep

        if is_sweep(run):
            sweep = read_sweep(run)
            said = (f"suggested LR {sweep.suggested:.3g}: {sweep.reason}" if sweep is not None and sweep.suggested
                    else (sweep.reason if sweep is not None else "no sweep recorded"))
            return [], f"LR range test (not a training run, see the LR range test tab): {said}", []
        sweep = read_sweep(sweep_run) if sweep_run is not None else None
        findings = list(diagnose(run, lr_sweep=sweep, reuse=reuse) if sweep is not None else diagnose(run, reuse=reuse))
    except Exception as exc:  # the advisor failing must not hide the plots
        return None, f"advisor failed on {run.path.name}: {type(exc).__name__}: {exc}", []
    from trainspect.analysis.findings import sort_findings

    findings = sort_findings(findings)
    gaps = not_checked(run)
    n_warn = sum(f.severity != "info" for f in findings)
    stop = stop_order(run, reuse)
    # a crash message can run to lines (gloo's "Connection reset by peer..."): the run list has it whole
    stop = f"{stop if len(stop) <= STOP_CHARS else stop[:STOP_CHARS - 1] + '…'} — " if stop else ""
    if not findings:   # silence about what was not recorded is not health (as the CLI says)
        return findings, stop + ("among what it could check, " if gaps else "") + "no problems found", gaps
    return findings, f"{stop}{len(findings)} finding(s), {n_warn} warning(s) or worse", gaps


STOP_CHARS = 200   # of the "rank k stopped first" sentence in the advisor's status line


def stop_order(run, reuse=None) -> str:
    """A distributed run whose other rank stopped first says so, as `trainspect diagnose` heads
    with it: torchrun SIGTERMs the ranks when one dies, and rank 0's own "terminated" hid the
    rank that died (trial 17, F11). "" for a single-process run, or when nothing stopped first."""
    from trainspect.analysis.ranks import dist_info, open_ranks, stopped_first

    try:
        info = dist_info(run)
        ranked = open_ranks(run, reuse=reuse, keep_points=False) if info is not None else None
        if ranked is None:
            return ""
        with ranked:
            stopped = stopped_first(ranked, int(info["rank"]))
        return stopped["text"] if stopped is not None else ""
    except Exception:  # noqa: BLE001 - a sibling file unreadable now: the findings still show
        return ""


class AdvisorJobs(QObject):
    """Background diagnoses; ``finished(key, findings, message)`` arrives on the UI thread,
    after ``covered(key, lines)``: what the advisor could not check (see ``not_checked``)."""

    finished = Signal(str, object, str)
    covered = Signal(str, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()      # _threads: the UI thread and the workers edit it

    def busy(self, key: str | None = None) -> bool:
        with self._lock:
            for k in [k for k, t in self._threads.items() if not t.is_alive()]:
                del self._threads[k]
            return bool(self._threads) if key is None else key in self._threads

    def start(self, key: str, run, sweep_run=None, reuse=None) -> None:
        """Diagnose ``run`` (the entry's GuardedRun, shared with the panels) in the background;
        ``sweep_run``: an open LR range test whose suggestion the LR fixes quote."""
        if self.busy(key):
            return
        if load_diagnose() is None:   # nothing to wait for
            self.covered.emit(key, [])
            self.finished.emit(key, None, NOT_AVAILABLE)
            return

        def work():
            findings, message, gaps = diagnose_run(run, sweep_run, reuse)
            # Not busy once the result is on its way: a slot of ``finished`` that starts the next
            # diagnosis (the Compare tab's one-at-a-time queue) saw this thread still alive and
            # waited for a signal that never came (a stalled advisor column, seen under load).
            with self._lock:
                if self._threads.get(key) is t:
                    del self._threads[key]
            try:
                self.covered.emit(key, gaps)      # queued in order: before the findings
                self.finished.emit(key, findings, message)
            except RuntimeError:
                pass  # the window closed while diagnosing: nobody left to tell

        t = threading.Thread(target=work, name=f"diagnose {run.path}", daemon=True)
        with self._lock:
            self._threads[key] = t
        t.start()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every running diagnosis ended (tests, screenshots). True if idle."""
        with self._lock:
            running = list(self._threads.values())
        for t in running:
            t.join(timeout)
        return not self.busy()
