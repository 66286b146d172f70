"""The scenario grid's recorder (tests/scenario_runs.py): runs recorded in the background while other
tests run, waited for or taken over by the test that needs them, each recorded exactly once."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.scenario_runs import RunKey, ScenarioRuns, grid


def write_run(name, path, seed=0, threads=1):
    """A stand-in recording (module level: the spawned workers import it): who wrote what, and a
    line per recording in the folder's ``log`` (a run recorded twice shows up there twice)."""
    if name == "boom":
        raise ValueError("this scenario cannot be recorded")
    Path(path).write_text(f"{name} {seed} {threads} {os.getpid()}")
    with open(Path(path).parent / "log", "a") as log:
        log.write(f"{name}-{seed}-{threads}\n")


def contents(runs, key):
    name, seed, threads, pid = Path(runs.path(key.name, key.seed, key.threads)).read_text().split()
    return name, int(seed), int(threads), int(pid)


def test_prefetched_runs_are_recorded_once_in_another_process_and_waited_for(tmp_path):
    runs = ScenarioRuns(tmp_path, record=write_run, workers=2)
    keys = grid(["a", "b"], seeds=(0, 1), threads=(1,))
    try:
        runs.prefetch(keys)
        runs.prefetch(keys)                     # asking again queues nothing twice
        runs.ensure(keys)
        for key in keys:
            name, seed, threads, pid = contents(runs, key)
            assert (name, seed, threads) == (key.name, key.seed, key.threads)
            assert pid != os.getpid()
        assert not runs.errors
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "log") == sorted(f"{k.id}.h5" for k in keys)
    finally:
        runs.close()


def test_a_run_that_fails_in_the_background_fails_the_test_that_asks_for_it_only(tmp_path):
    runs = ScenarioRuns(tmp_path, record=write_run, workers=1)
    try:
        runs.prefetch([RunKey("boom"), RunKey("fine")])
        with pytest.raises(RuntimeError, match="this scenario cannot be recorded"):
            runs.path("boom")
        assert contents(runs, RunKey("fine"))[0] == "fine"
        runs.prefetch([RunKey("boom")])         # a failed run is not queued again
        with pytest.raises(RuntimeError, match="boom-seed0-threads1"):
            runs.path("boom")
    finally:
        runs.close()


def test_runs_still_queued_when_the_background_stops_are_recorded_on_demand(tmp_path):
    runs = ScenarioRuns(tmp_path, record=write_run, workers=1)
    keys = grid([f"s{i}" for i in range(12)], seeds=(0,), threads=(1,))
    runs.prefetch(keys)
    runs.close()                                # the session ended early: queued runs dropped
    assert not runs.errors
    runs.ensure(keys)
    assert [contents(runs, k)[0] for k in keys] == [k.name for k in keys]
    assert not runs.errors


def test_without_a_prefetch_runs_are_recorded_on_demand(tmp_path):
    runs = ScenarioRuns(tmp_path, record=write_run, workers=2)
    assert contents(runs, RunKey("x", 2, 2))[:3] == ("x", 2, 2)
    runs.close()                                # nothing to stop


def _recordings(directory) -> list[str]:
    return sorted((Path(directory) / "log").read_text().split())


def test_two_sessions_sharing_a_folder_record_each_run_once(tmp_path):
    """Two pytest-xdist workers share the grid's folder: both prefetch the whole grid and every
    run is still recorded once, by one of them; each session gets every file."""
    keys = grid([f"s{i}" for i in range(8)], seeds=(0, 1), threads=(1,))
    a, b = ScenarioRuns(tmp_path, record=write_run, workers=1), ScenarioRuns(tmp_path, record=write_run, workers=1)
    try:
        a.prefetch(keys)
        b.prefetch(keys)
        b.ensure(keys)
        a.ensure(keys)
        assert _recordings(tmp_path) == sorted(f"{k.name}-{k.seed}-{k.threads}" for k in keys)
        assert all(contents(a, k)[0] == k.name and contents(b, k)[0] == k.name for k in keys)
        assert not a.errors and not b.errors
        assert not list(tmp_path.glob("*.claim")) and not list(tmp_path.glob("*.partial*"))
    finally:
        a.close()
        b.close()


def test_a_run_claimed_by_a_process_that_died_is_recorded(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runs = ScenarioRuns(tmp_path, record=write_run, workers=1)
    Path(f"{runs.file(RunKey('x'))}.claim").write_text(dead.stdout.strip())
    assert contents(runs, RunKey("x"))[0] == "x"
    assert _recordings(tmp_path) == ["x-0-1"]


def test_a_run_another_process_is_recording_is_waited_for_not_recorded_again(tmp_path):
    import threading
    runs = ScenarioRuns(tmp_path, record=write_run, workers=1)
    target = runs.file(RunKey("y"))
    claim = Path(f"{target}.claim")
    claim.write_text(str(os.getpid()))             # a live claimant (this process stands in for it)

    def other_process_finishes():
        target.write_text("y 0 1 1")
        claim.unlink()
    timer = threading.Timer(0.3, other_process_finishes)
    timer.start()
    try:
        assert contents(runs, RunKey("y")) == ("y", 0, 1, 1)
    finally:
        timer.cancel()
    assert not (tmp_path / "log").exists()       # nothing recorded here
