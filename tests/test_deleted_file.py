"""A run file deleted or moved while being written is not lost silently (issue 11 part 2;
recorder/unlinked.py)."""
from __future__ import annotations

import os
import time
import warnings

import pytest

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

DEADLINE = 30.0


def _log_until_warned(rec, start, pattern, caught):
    """Log a step at a time until the writer's heartbeat check has warned (generous deadline)."""
    step, end = start, time.monotonic() + DEADLINE
    while not any(pattern in str(w.message) for w in caught):
        assert time.monotonic() < end, [str(w.message) for w in caught]
        rec.log({"loss": float(step)}, step=step)
        rec.flush()
        step += 1
        time.sleep(0.05)
    return step


def _messages(caught):
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


@pytest.mark.parametrize("path_taken", [False, True])
def test_a_deleted_run_is_saved_back_at_close(tmp_path, path_taken):
    path = tmp_path / "exp1.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = Recorder(path)
        for i in range(100):
            rec.log({"loss": float(i)}, step=i)
        rec.flush()
        os.unlink(path)
        step = _log_until_warned(rec, 100, "was deleted while the run is being written", caught)
        for i in range(step, step + 50):
            rec.log({"loss": float(i)}, step=i)
        if path_taken:
            path.write_bytes(b"somebody else's file")
        rec.close()
    saved = tmp_path / ("exp1-2.h5" if path_taken else "exp1.h5")
    assert any(f"the complete run was saved to {saved}" in m for m in _messages(caught)), _messages(caught)
    assert sum("was deleted while the run is being written" in m for m in _messages(caught)) == 1   # once
    with open_run(saved) as r:
        assert r.scalar("loss").steps.tolist() == list(range(step + 50))
        assert r.status().state == "finished"
    if path_taken:
        assert path.read_bytes() == b"somebody else's file"


def test_a_moved_run_warns_and_goes_on_in_the_moved_file(tmp_path):
    path, moved = tmp_path / "exp1.h5", tmp_path / "elsewhere.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            rec.log({"loss": 0.0}, step=0)
            rec.flush()
            os.rename(path, moved)
            step = _log_until_warned(rec, 1, "was moved or replaced", caught)
    assert not path.exists()
    with open_run(moved) as r:
        assert r.scalar("loss").steps.tolist() == list(range(step))
