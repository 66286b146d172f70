"""A Recorder passed to a spawned worker failed deep in h5py/weakref ("Can't pickle local
object ..."), and copy.copy() made a second working handle on the same writer: both are refused
in one sentence, and the run goes on."""
from __future__ import annotations

import copy
import pickle

import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_recorder_is_not_copied_or_pickled(tmp_path, how):
    with Recorder(tmp_path / "r.h5") as rec:
        rec.log({"loss": 1.0}, step=0)
        with pytest.raises(TypeError, match="cannot be copied or sent to another process"):
            how(rec)
        rec.log({"loss": 0.5}, step=1)
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar("loss").values.tolist() == [1.0, 0.5] and run.status().state == "finished"
