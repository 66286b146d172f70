"""A crafted run whose scalar columns are stored in gzip'd chunks of 2**24 rows: HDF5 inflates a
whole chunk to read any row of it, so a 6.6 MB file cost every command 25-57 s and 1.1 GB with
2**27-row chunks (attack round 4). Refused at once, naming the dataset; the recorder's own
chunks (16,384 rows at most, ~256 KB) still open."""
from __future__ import annotations

import shutil

import h5py
import pytest

from trainspect.analysis import open_run
from trainspect.app.cli import main
from trainspect.recorder import Recorder
from trainspect.recorder.format import RunFileError


def _run(path):
    with Recorder(path) as rec:
        for step in range(3000):
            rec.log({"loss": 1.0 / (step + 1)}, step=step)
    return path


def _bomb(src, dst, rows=1 << 24):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        for col in ("step", "tag", "value", "wall"):
            name = f"scalars/{col}"
            data, attrs = f[name][()], dict(f[name].attrs)
            del f[name]
            ds = f.create_dataset(name, data=data, maxshape=(None,), chunks=(rows,), compression="gzip")
            ds.attrs.update(attrs)
    return dst


def test_huge_chunks_are_refused_before_any_read(tmp_path, capsys):
    bomb = _bomb(_run(tmp_path / "run.h5"), tmp_path / "bomb.h5")
    with pytest.raises(RunFileError, match="chunks of 16,777,216 rows"):
        open_run(bomb)
    assert main(["info", str(bomb)]) == 2
    assert "not written by trainspect" in capsys.readouterr().err


def test_the_recorders_own_files_open(tmp_path):
    with open_run(_run(tmp_path / "run.h5")) as run:
        assert len(run.scalar("loss")) == 3000
