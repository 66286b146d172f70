"""A disk that fills up while a run is written: the recorder stops with a warning before the
disk is full (HDF5 can crash the process when a write fails for lack of room), training goes
on, and what was written stays readable."""
from __future__ import annotations

import os
import warnings
from collections import namedtuple

import numpy as np

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import writer_thread

FakeStatvfs = namedtuple("FakeStatvfs", "f_bavail f_frsize")
RESERVE = 1 << 20


def test_a_filling_disk_stops_the_recorder_before_the_reserve_is_used(tmp_path, monkeypatch):
    # Checks come only from the bytes written: the time bound is out of reach in this test.
    monkeypatch.setattr(writer_thread, "SPACE_CHECK_S", 3600.0)
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    rec._writer.min_free_bytes = RESERVE
    capacity = os.path.getsize(path) + RESERVE + (3 << 20)    # 3 MiB of room above the reserve
    asked = []

    def statvfs(directory):
        free = max(0, capacity - os.path.getsize(path))
        asked.append(free)
        return FakeStatvfs(free // 4096, 4096)

    monkeypatch.setattr(writer_thread.os, "statvfs", statvfs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps = np.arange(2000)
        for block in range(200):     # 200 x 2000 x 5 values, ~56 MB of scalar rows
            rec.log_many({f"m{i}": np.full(2000, float(block)) for i in range(5)}, steps=steps + block * 2000)
            rec.flush()
            if not rec.enabled:
                break
        rec.log({"after": 1.0})     # training goes on: log() still works (and records nothing)
        rec.close()
    messages = [str(w.message) for w in caught]
    assert any("disk almost full" in m for m in messages), messages
    assert len(asked) > 3            # asked again as the room shrank, not once per run
    # It stopped in time: the file never ate more than half of the reserve.
    assert os.path.getsize(path) <= capacity - RESERVE // 2
    with open_run(path) as run:
        assert run.status().state == "recording stopped" and "disk almost full" in run.status().error
        m0 = run.scalar("m0")
        assert len(m0.steps) >= 2000 and m0.steps.tolist() == list(range(len(m0.steps)))


def test_a_small_filesystem_records_with_a_reserve_of_an_eighth_of_it(tmp_path, monkeypatch):
    """A 60 MB scratch filesystem (Docker's /dev/shm is 64 MB) recorded nothing: the fixed 64 MiB
    reserve was more than the whole disk. The reserve is at most an eighth of the filesystem."""
    Statvfs = namedtuple("Statvfs", "f_bavail f_frsize f_blocks")
    size = 60 << 20
    monkeypatch.setattr(writer_thread.os, "statvfs", lambda d: Statvfs((size - (1 << 20)) // 4096, 4096, size // 4096))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "run.h5") as rec:
            for step in range(100):
                rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    assert not [w for w in caught if "disk almost full" in str(w.message)]
    with open_run(tmp_path / "run.h5") as run:
        assert run.status().state == "finished" and len(run.scalar("train/loss").steps) == 100
