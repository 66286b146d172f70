"""The scenario grid's recorder (tests/scenario_runs.py): runs recorded in the background while other
tests run, waited for or taken over by the test that needs them, each recorded exactly once."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.scenario_runs import RunKey, ScenarioRuns, grid


def write_run(name, path, seed=0, threads=1):
    """A stand-in recording (module level: the spawned workers import it): who wrote what."""
    if name == "boom":
        raise ValueError("this scenario cannot be recorded")
    Path(path).write_text(f"{name} {seed} {threads} {os.getpid()}")


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
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k.id}.h5" for k in keys)   # no partials
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
