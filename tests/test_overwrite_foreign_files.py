"""``Recorder(path, overwrite=True)`` replaced whatever was at ``path``: a Keras ``model.h5``,
a text file, a FIFO. It now replaces trainspect runs only (also damaged or cut-short ones, which
a crashed writer leaves) and refuses the rest, changing nothing."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def _run(path, value):
    with Recorder(path, overwrite=True) as rec:
        rec.log({"loss": value}, step=0)


def test_overwrite_replaces_a_run(tmp_path):
    path = tmp_path / "run.h5"
    _run(path, 1.0)
    _run(path, 2.0)
    with open_run(path) as run:
        assert run.scalar("loss").values.tolist() == [2.0]


@pytest.mark.parametrize("kind", ["keras_model", "text", "fifo"])
def test_overwrite_refuses_what_is_not_a_run_and_leaves_it_alone(tmp_path, kind):
    path = tmp_path / "model.h5"
    if kind == "keras_model":
        with h5py.File(path, "w") as f:
            f["model_weights/dense/kernel"] = np.arange(6.0).reshape(2, 3)
    elif kind == "text":
        path.write_text("weights I need\n")
    else:
        os.mkfifo(path)
    before = path.stat()
    with pytest.raises(OSError, match="overwrite=True replaces trainspect runs only"):
        _run(path, 1.0)
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    if kind == "keras_model":
        with h5py.File(path, "r") as f:
            assert f["model_weights/dense/kernel"][()].sum() == 15.0
    assert not (tmp_path / "model.h5.lock").exists() and not list(tmp_path.glob("*.tmp*"))


def test_overwrite_replaces_an_empty_or_cut_short_file(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"")
    _run(path, 3.0)
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)      # a writer killed while creating it
    _run(path, 4.0)
    with open_run(path) as run:
        assert run.scalar("loss").values.tolist() == [4.0]


def test_a_dangling_link_does_not_create_the_directories_it_names(tmp_path):
    link = tmp_path / "run.h5"
    link.symlink_to(tmp_path / "missing" / "deeper" / "x.h5")
    with pytest.raises(OSError, match="symbolic link .* whose directory does not exist"):
        _run(link, 1.0)
    assert not (tmp_path / "missing").exists() and link.is_symlink()
