"""resume=True on a run file it cannot continue says so, and leaves the file as it was.

A newer trainspect's run (schema version above this one's) was continued as if it were ours;
a damaged one (a table missing or of the wrong kind) raised a bare KeyError, TypeError or
ValueError from deep inside h5py. Both now raise OSError naming the file and what is wrong,
the old run still opens with its values, and the call can be retried (the lock is free).
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt


def _record(path, seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(path)
    rec.watch(model, opt)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = model(torch.randn(5, 3)).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        rec.log({"loss": loss.item()})
    rec.close()
    return losses


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


DAMAGE = {
    "layer table missing": lambda f: f.__delitem__(fmt.PARAM_NAME),
    "state of text": lambda f: _replace(f, fmt.STATE, np.array([b"x"])),
    "snapshot shapes flat": lambda f: _replace(f, fmt.SNAP_SHAPE, np.arange(3)),
    "status of numbers": lambda f: _replace(f, fmt.STATUS, np.arange(3)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_run_is_refused_with_a_clear_error(tmp_path, damage):
    path = tmp_path / "run.h5"
    _record(path, seed=len(damage))
    with h5py.File(path, "r+") as f:
        DAMAGE[damage](f)
    for _attempt in range(2):   # the second try meets the same error, not "being written"
        with pytest.raises(OSError, match=r"cannot resume run file .*run\.h5: damaged run file"):
            Recorder(path, resume=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_newer_schema_is_not_continued(tmp_path, seed):
    path = tmp_path / "run.h5"
    losses = _record(path, seed)
    with h5py.File(path, "r+") as f:
        f.attrs[fmt.ATTR_SCHEMA] = np.int64(fmt.SCHEMA_VERSION + 1)
    before = path.read_bytes()
    with pytest.raises(OSError, match=rf"schema version {fmt.SCHEMA_VERSION + 1}.*upgrade trainspect"):
        Recorder(path, resume=True)
    with h5py.File(path, "r+") as f:   # back to our version: the old run is intact
        f.attrs[fmt.ATTR_SCHEMA] = np.int64(fmt.SCHEMA_VERSION)
    assert len(path.read_bytes()) == len(before)
    with open_run(path) as run:
        np.testing.assert_allclose(run.scalar("loss").values, losses)
    rec = Recorder(path, resume=True)   # and it can be continued now
    rec.log({"loss": 0.5})
    rec.close()
    with open_run(path) as run:
        np.testing.assert_allclose(run.scalar("loss").values, losses + [0.5])
