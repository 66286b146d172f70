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


HOLD = """
import h5py, numpy as np, sys, time
f = h5py.File(sys.argv[1], "w", libver="latest")
f["weights"] = np.arange(100_000, dtype="f8"); f.attrs["keras_version"] = "2.15"; f.flush()
print("holding", flush=True); time.sleep(60)
"""


def test_a_foreign_file_open_for_writing_elsewhere_is_neither_replaced_nor_edited(tmp_path):
    """HDF5 will not open another program's file while that program writes it: it counted as a
    damaged run, and overwrite replaced it; resume cleared its superblock flags before refusing."""
    import subprocess
    import sys

    path = tmp_path / "model.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = path.read_bytes()
        with pytest.raises(OSError, match="carries no trainspect run mark"):
            _run(path, 1.0)
        with pytest.raises(OSError, match="not a trainspect run"):
            Recorder(path, resume=True)
        assert path.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


def test_a_cut_short_foreign_file_is_refused_and_a_cut_short_run_replaced(tmp_path):
    foreign = tmp_path / "model.h5"
    with h5py.File(foreign, "w") as f:
        f["weights"] = np.arange(200_000, dtype="f8")
    os.truncate(foreign, 100_000)
    with pytest.raises(OSError, match="carries no trainspect run mark"):
        _run(foreign, 1.0)
    assert foreign.stat().st_size == 100_000
    run = tmp_path / "run.h5"
    with Recorder(run) as rec:
        for step in range(2000):
            rec.log({"loss": float(step)}, step=step)
    os.truncate(run, run.stat().st_size // 2)
    _run(run, 2.0)
    with open_run(run) as opened:
        assert opened.scalar("loss").values.tolist() == [2.0]
