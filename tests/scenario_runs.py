"""Record scenario runs once per test session, in parallel worker processes, and share them.

A run is named by a ``RunKey`` (scenario name, seed, CPU thread count). ``ScenarioRuns`` turns
keys into run files with a recording function ``record(name, path, seed, threads)`` (by default
``tests.scenarios.record_scenario``; any module-level function with that signature works, so a
scenario can be anything that writes a run file). Missing runs are recorded in a pool of
spawned processes: each worker sets its own torch thread count without touching the test
process, and a failure is kept per run and raised by the test that asks for that run.

Several processes may share one folder (the pytest-xdist workers of a session): each run is
claimed first (an ``O_EXCL`` claim file holding the recording process's id), so it is recorded
once, by whoever claimed it; the others wait for its file, and record it themselves only if
that process failed or died.

The session fixture ``scenario_runs`` (tests/conftest.py) records into a temporary folder, or
into ``$TRAINSPECT_SCENARIO_CACHE`` keyed by a hash of the scenario and recorder sources and the
torch version (reuse across sessions while tuning advisor rules; any source change re-records).

The seed-by-seed table of what the advisor finds:  python -m tests.scenario_runs [DIR]
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

SEEDS = (0, 1, 2)
THREADS = (1, 2)        # torch.set_num_threads: the kernels, and so the numbers, differ


@dataclass(frozen=True, order=True)
class RunKey:
    name: str
    seed: int = 0
    threads: int = 1

    @property
    def id(self) -> str:
        return f"{self.name}-seed{self.seed}-threads{self.threads}"


def grid(names, seeds=SEEDS, threads=THREADS) -> list[RunKey]:
    """Every scenario in every seed and thread count."""
    return [RunKey(n, s, t) for n in names for s in seeds for t in threads]


def default_workers() -> int:
    if os.environ.get("TRAINSPECT_SCENARIO_WORKERS"):
        return max(1, int(os.environ["TRAINSPECT_SCENARIO_WORKERS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # not Linux
        return max(1, os.cpu_count() or 1)


def _quiet_threads() -> None:
    """Pool initializer, before torch loads: idle OpenMP threads sleep instead of spinning.

    Spinning threads on 2 shared cores made a 2-thread run 40x slower under load (100 s instead
    of 2.2 s for bad_batches_spikes); the wait policy changes no result, only the waiting."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _background_worker() -> None:
    """Initializer of the background pool: quiet threads, and a lower CPU priority than the tests
    running beside it (nothing they measure waits on it)."""
    _quiet_threads()
    try:
        os.nice(10)
    except (AttributeError, OSError):          # not POSIX, or not allowed
        pass


# _record_one's answer for a run another process is recording (a second pytest-xdist worker
# sharing the directory): the caller waits for its file instead.
CLAIMED = "claimed by another process"


def _claim_path(path: str) -> str:
    return f"{path}.claim"


def _claimant_alive(claim: str) -> bool:
    """Is the process named in ``claim`` still running (a killed worker leaves its claim behind)?"""
    try:
        pid = int(Path(claim).read_text() or 0)
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except (OSError, ValueError):   # unreadable just now (being written or removed), or not ours to signal
        return os.path.exists(claim)


def _claim(path: str) -> bool:
    """Take the run at ``path`` for this process: one claim file per run, made atomically, so two
    processes sharing the directory never record the same run. False: another one has it."""
    claim = _claim_path(path)
    while True:
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _claimant_alive(claim):
                return False
            try:
                os.remove(claim)        # a dead process's claim: take it over
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True


def _record_one(record, key: RunKey, path: str) -> str | None:
    """Worker: record one run; write to a temporary name so a half-written file is never used.

    Returns None, ``CLAIMED``, or the traceback text of a failure (exceptions do not always pickle)."""
    if os.path.exists(path):
        return None
    if not _claim(path):
        return CLAIMED
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        if not os.path.exists(path):    # recorded by another process between the check and the claim
            record(key.name, tmp, seed=key.seed, threads=key.threads)
            os.replace(tmp, path)
        return None
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        return traceback.format_exc()
    finally:
        os.remove(_claim_path(path))


class ScenarioRuns:
    """Run files by key, recorded on demand in parallel, each at most once."""

    def __init__(self, directory, record=None, workers: int | None = None):
        if record is None:
            from tests.scenarios import record_scenario as record
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.record = record
        self.workers = workers or default_workers()
        self.errors: dict[RunKey, str] = {}
        self._background = None                 # prefetch()'s pool, and its runs not yet waited for
        self._pending: dict = {}

    def file(self, key: RunKey) -> Path:
        return self.directory / f"{key.id}.h5"

    def prefetch(self, keys, workers: int = 1) -> None:
        """Start recording the keys that have no file yet in ``workers`` background processes (at a
        lower priority) and return at once: a test session calls this first and runs its other
        tests meanwhile; ``ensure`` waits for the runs it needs that have started and records the
        others itself."""
        missing = sorted({k for k in keys if not self.file(k).exists() and k not in self.errors} - set(self._pending))
        if not missing:
            return
        if self._background is None:
            self._background = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                   initializer=_background_worker)
        for k in missing:
            self._pending[k] = self._background.submit(_record_one, self.record, k, str(self.file(k)))

    def close(self) -> None:
        """Stop the background recording (a run in progress finishes; the queued ones are dropped)."""
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)
            self._background, self._pending = None, {}

    def _collect(self, key: RunKey, future) -> bool:
        """Take a recording's outcome; False if another process is recording that run."""
        try:
            error = future.result()
        except BaseException:                   # the worker process died
            error = traceback.format_exc()
        if error == CLAIMED:
            return False
        if error:
            self.errors[key] = error
        return True

    def _claimed_elsewhere(self, key: RunKey) -> bool:
        claim = _claim_path(str(self.file(key)))
        return os.path.exists(claim) and _claimant_alive(claim)

    def _wait_for_others(self, keys) -> None:
        """Wait until each run another process claimed has its file or lost its claim (that process
        failed or died: ``ensure`` then records it here)."""
        for key in keys:
            while not self.file(key).exists() and self._claimed_elsewhere(key):
                time.sleep(0.05)

    def ensure(self, keys) -> None:
        """Record every key that has no file yet (and has not failed), in parallel. Runs that
        another process sharing the directory is recording are waited for."""
        keys = set(keys)
        for key in sorted(keys & set(self._pending)):
            future = self._pending.pop(key)
            if not future.cancel():             # started in the background: wait for it
                self._collect(key, future)      # (recorded elsewhere: waited for below)
        while True:
            missing = sorted({k for k in keys if not self.file(k).exists() and k not in self.errors})
            if not missing:
                return
            claimed = [k for k in missing if self._claimed_elsewhere(k)]
            if len(claimed) == len(missing):    # all on their way: wait (a dead claimant's run comes back)
                self._wait_for_others(claimed)
                continue
            todo = [k for k in missing if k not in claimed]
            # spawn, not fork: the test process may hold torch/OpenMP and Qt threads
            with ProcessPoolExecutor(min(self.workers, len(todo)), mp_context=get_context("spawn"),
                                     initializer=_quiet_threads) as pool:
                futures = {k: pool.submit(_record_one, self.record, k, str(self.file(k))) for k in todo}
                elsewhere = [key for key, future in futures.items() if not self._collect(key, future)]
            self._wait_for_others(claimed + elsewhere)

    def path(self, name: str, seed: int = 0, threads: int = 1) -> str:
        key = RunKey(name, seed, threads)
        self.ensure([key])
        if key in self.errors:
            raise RuntimeError(f"recording {key.id} failed in its worker:\n{self.errors[key]}")
        return str(self.file(key))


def source_digest() -> str:
    """Hash of what decides a scenario run's content: scenario code, recorder code, torch version."""
    import torch
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(torch.__version__.encode())
    here = Path(__file__).parent
    for f in [here / "scenarios.py", here / "scenario_kit.py", *sorted((root / "recorder").rglob("*.py"))]:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def findings_table(runs: ScenarioRuns, keys) -> list[dict]:
    """One row per run: expected symptom, whether it was found with an accepted top cause."""
    from trainspect.analysis import diagnose, open_run
    from trainspect.analysis.vocab import Severity
    from tests.scenario_pending import PENDING
    from tests.scenarios import SCENARIOS
    rows = []
    for key in keys:
        scenario = SCENARIOS[key.name]
        with open_run(runs.path(key.name, key.seed, key.threads)) as run:
            findings = diagnose(run)
        loud = [f for f in findings if f.severity != "info"]
        if scenario.symptom is None:
            ok, got = not loud, ", ".join(f.symptom for f in loud) or "silent"
        else:
            hit = next((f for f in findings if f.symptom == scenario.symptom), None)
            top = hit.causes[0].id if hit and hit.causes else None
            ok = bool(hit) and Severity(hit.severity).rank >= Severity(scenario.severity).rank \
                and top in scenario.causes
            got = f"{scenario.symptom} <- {top}" if hit else "missed: " + (
                ", ".join(f"{f.symptom} <- {f.causes[0].id if f.causes else None}" for f in findings) or "nothing")
        rows.append(dict(key=key, expected=scenario.symptom or "healthy", ok=ok, got=got,
                         pending=key.name in PENDING, findings=findings))
    return rows


def print_matrix(rows) -> None:
    """One line per scenario: expected (symptom <- causes), then hit/MISS per (seed, threads)."""
    from tests.scenarios import SCENARIOS
    cells = sorted({(r["key"].seed, r["key"].threads) for r in rows})
    print("| scenario | expected | " + " | ".join(f"s{s} t{t}" for s, t in cells) + " |")
    print("|---|---|" + "---|" * len(cells))
    by = {}
    for r in rows:
        by.setdefault(r["key"].name, {})[(r["key"].seed, r["key"].threads)] = r
    for name, got in by.items():
        sc = SCENARIOS[name]
        expected = f"{sc.symptom} <- {'/'.join(sc.causes)}" if sc.symptom else "silent"
        pending = " (pending)" if any(r["pending"] for r in got.values()) else ""
        marks = [("hit" if got[c]["ok"] else "MISS: " + got[c]["got"]) if c in got else "" for c in cells]
        print(f"| {name}{pending} | {expected} | " + " | ".join(marks) + " |")


def main(argv) -> int:
    """python -m tests.scenario_runs [DIR [NAME ...]]: record (what DIR lacks), diagnose, print
    the scenario x seed x thread table; -v prints every finding's title too; --matrix prints one
    row per scenario with a hit/MISS column per (seed, threads) cell."""
    import tempfile
    import time
    from tests.scenarios import SCENARIOS
    verbose, matrix = "-v" in argv, "--matrix" in argv
    argv = [a for a in argv if a not in ("-v", "--matrix")]
    directory = argv[0] if argv else tempfile.mkdtemp(prefix="trainspect-scenarios-")
    names = argv[1:] or list(SCENARIOS)
    runs = ScenarioRuns(directory)
    keys = grid(names)
    t0 = time.perf_counter()
    runs.ensure(keys)
    recorded = time.perf_counter() - t0
    rows = findings_table(runs, keys)
    diagnosed = time.perf_counter() - t0 - recorded
    if matrix:
        print_matrix(rows)
    else:
        print("| scenario | expected | seed | threads | result | found |\n|---|---|---|---|---|---|")
    for r in rows if not matrix else []:
        k = r["key"]
        result = ("hit" if r["ok"] else "MISS") + (" (pending)" if r["pending"] else "")
        print(f"| {k.name} | {r['expected']} | {k.seed} | {k.threads} | {result} | {r['got']} |")
        if verbose:
            for f in r["findings"]:
                print(f"|   | {f.severity} | {f.symptom} | {f.first_step}..{f.last_step} | {f.title} | "
                      + ", ".join(f"{c.id} {c.confidence:.2f}" for c in f.causes) + " |")
    asserted = [r for r in rows if not r["pending"]]
    misses = sum(not r["ok"] for r in asserted)
    pending = [r for r in rows if r["pending"]]
    print(f"\n{len(asserted) - misses}/{len(asserted)} asserted runs as expected; pending (rule not landed): "
          f"{sum(r['ok'] for r in pending)}/{len(pending)} already as expected")
    print(f"recorded {len(keys)} runs in {recorded:.0f} s wall ({runs.workers} workers), diagnosed in "
          f"{diagnosed:.0f} s; runs in {directory}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
