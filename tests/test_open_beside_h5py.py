"""open_run() in a process that already holds the run file open with plain h5py (a notebook
poking at the file beside trainspect's reader).

HDF5 shares one handle per file inside a process and refuses a second open whose locking flag
differs: open_run() said "damaged run file" about a healthy run. A file another program holds
open for writing said "run is starting... try again" for ever.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.format import RunFileError


def _run(path, seed):
    values = np.random.default_rng(seed).uniform(0.5, 2.0, 5)
    with Recorder(path) as rec:
        for step, v in enumerate(values):
            rec.log({"loss": float(v)}, step=step)
    return values


@pytest.mark.parametrize("seed", [0, 1])
def test_reads_a_run_that_h5py_has_open_for_reading(tmp_path, seed):
    path = tmp_path / "run.h5"
    values = _run(path, seed)
    with h5py.File(path, "r") as f:
        with open_run(path) as run:
            np.testing.assert_allclose(run.scalar("loss").values, values)
        assert "trainspect_format" in f.attrs   # the notebook's handle still works
    with open_run(path) as run:
        np.testing.assert_allclose(run.scalar("loss").values, values)


def test_a_file_held_for_writing_by_another_program_says_so(tmp_path):
    path = tmp_path / "run.h5"
    _run(path, 0)
    with h5py.File(path, "r+"), pytest.raises(RunFileError, match=r"open for writing by a program other than trainspect"):
        open_run(path)
