"""How a run is opened decides whether a damaged byte can hang a reader (issue 11 part 1).

A closed run opens without SWMR (HDF5 then fails at once on a bad checksum); only a file a
writer holds opens in SWMR mode, and there a failed read is retried for a bounded time only
while the writer is changing the file. Readers follow a live writer whatever
HDF5_USE_FILE_LOCKING says.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import trainspect.analysis.run as run_module
from tests.fixtures_runs import make_run
from tests.test_tail import REPO, start_writer
from trainspect.analysis import RunFileError, open_run
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter


def live_writer(path) -> RunFileWriter:
    w = RunFileWriter(path)
    w.start({"name": "live"}, flush_every=0.1)
    w.add_tags(["loss"])
    w.append_scalars(np.arange(5), np.zeros(5, np.int32), np.ones(5), np.zeros(5))
    w.flush(4)
    return w


def test_a_closed_run_opens_without_swmr_a_held_one_with_it(tmp_path):
    with open_run(make_run(tmp_path / "done.h5", n_steps=20, n_layers=0)) as run:
        assert not run._swmr
        assert not fmt.read_head(run.path).writer_open
    w = live_writer(tmp_path / "live.h5")
    try:
        assert fmt.read_head(tmp_path / "live.h5").writer_open
        with open_run(tmp_path / "live.h5") as run:
            assert run._swmr and run.status().state == "live" and len(run.scalar("loss")) == 5
    finally:
        w.close()
    with open_run(tmp_path / "live.h5") as run:   # closed now: a plain open again
        assert not run._swmr and run.status().state == "finished"


class FlakyState:
    """state/values reads that fail ``failures`` times (a torn read of a live file), then work."""

    def __init__(self, monkeypatch, failures):
        self.calls = 0
        real = run_module.Run._state

        def state(run):
            self.calls += 1
            if self.calls <= failures:
                raise OSError("Can't synchronously read data (incorrect metadata checksum after all read attempts)")
            return real(run)
        monkeypatch.setattr(run_module.Run, "_state", state)


@pytest.fixture
def live_run(tmp_path):
    """A run opened while its writer (this process) holds the file: SWMR mode."""
    w = live_writer(tmp_path / "live.h5")
    run = open_run(tmp_path / "live.h5")
    yield run
    run.close()
    w.close()


def test_a_torn_read_of_a_live_run_is_tried_again(live_run, monkeypatch):
    monkeypatch.setattr(fmt, "writer_active", lambda path: True)
    flaky = FlakyState(monkeypatch, failures=2)
    assert live_run.status().last_step == 4 and flaky.calls == 3


def test_a_live_run_that_keeps_failing_ends_in_a_clear_error(live_run, monkeypatch):
    monkeypatch.setattr(fmt, "writer_active", lambda path: True)
    monkeypatch.setattr(fmt, "LIVE_RETRY_S", 0.3)
    FlakyState(monkeypatch, failures=10**9)
    with pytest.raises(RunFileError, match="could not read the live run within") as e:
        live_run.status()
    assert "live.h5" in str(e.value)


def test_damage_is_not_retried_when_no_writer_is_changing_the_file(live_run, monkeypatch):
    monkeypatch.setattr(fmt, "writer_active", lambda path: False)   # killed writer, old file
    flaky = FlakyState(monkeypatch, failures=10**9)
    with pytest.raises(RunFileError, match="damaged run file"):
        live_run.status()
    assert flaky.calls == 1


def test_a_resumed_read_splits_no_row_twice(tmp_path, monkeypatch):
    """A scan that fails half-way (a torn block) resumes after the blocks it finished."""
    w = RunFileWriter(tmp_path / "r.h5")
    w.start({"name": "r"})
    w.add_tags(["a", "b"])
    n = 5000
    w.append_scalars(np.arange(n) // 2, (np.arange(n) % 2).astype(np.int32), np.arange(n, dtype=float), np.zeros(n))
    w.flush(n // 2)
    run = open_run(tmp_path / "r.h5")
    monkeypatch.setattr(run_module, "SCALAR_READ_BLOCK", 1000)
    monkeypatch.setattr(fmt, "writer_active", lambda path: True)
    real_split, calls = run_module.Run._split_rows, []

    def split(self, *cols):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("torn read")
        return real_split(self, *cols)
    monkeypatch.setattr(run_module.Run, "_split_rows", split)
    a = run.scalar("a")
    assert len(a) == n // 2 and np.array_equal(a.values, np.arange(0, n, 2.0))
    run.close()
    w.close()


@pytest.mark.parametrize("locking", [None, "TRUE", "FALSE", "BEST_EFFORT"])
def test_readers_follow_a_live_writer_under_any_hdf5_file_locking(tmp_path, monkeypatch, locking):
    """The variable overrides every program's own choice (HDF5 >= 1.12.1): writer and readers."""
    if locking:
        monkeypatch.setenv("HDF5_USE_FILE_LOCKING", locking)
    else:
        monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    path = tmp_path / "live.h5"
    writer = start_writer(path, steps=20, dt=0.05, mode="idle")
    try:
        assert writer.stdout.readline().strip() == "READY"
        env = dict(os.environ)
        for args in (["info", str(path)], ["diagnose", "--json", str(path)], ["tail", "--once", str(path)]):
            proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", *args], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode in (0, 1), (args, proc.stderr[-2000:])
            assert "live" in proc.stdout and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)
    finally:
        writer.kill()
        writer.wait()


def test_a_file_whose_writer_has_not_begun_says_the_run_is_starting(tmp_path):
    from trainspect.recorder.claim import WriterLock

    lock = WriterLock(tmp_path / "new.h5")     # as the recorder: its lock first, then the file
    assert lock.acquire()
    w = RunFileWriter(tmp_path / "new.h5")   # created, layout not yet frozen (no SWMR)
    try:
        head = fmt.read_head(tmp_path / "new.h5")
        assert head.writer_open and not head.swmr_writer
        with pytest.raises(RunFileError, match="run is starting") as e:
            open_run(tmp_path / "new.h5")
        assert "new.h5" in str(e.value)
    finally:
        w.close()
        lock.release()
