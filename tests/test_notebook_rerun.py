"""A notebook cell that makes a Recorder, run again: the earlier Recorder of this process on the
same path is closed (finished, with a warning) instead of refusing the new one with RunFileInUse,
and its hooks come off the model so it is not recorded twice."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.warning import RecorderWarning

torch.set_num_threads(1)


def cell(path, model, opt, steps, **kwargs):
    """The cell's code: no ``with``, no close() (the user runs the next cell or this one again)."""
    rec = Recorder(path, **kwargs)
    rec.watch(model, opt)
    for _ in range(steps):
        loss = F.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss})
    return rec


def hooks(model, opt):
    return (len(model._forward_hooks), len(model._forward_pre_hooks),
            len(opt._optimizer_step_pre_hooks), len(opt._optimizer_step_post_hooks))


@pytest.mark.parametrize("mode", ["new", "overwrite", "resume"])
def test_running_the_cell_again_closes_the_earlier_recorder(tmp_path, mode):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs = {"overwrite": mode == "overwrite", "resume": mode == "resume"}
    first = cell(tmp_path / "exp.h5", model, opt, 10, **kwargs)
    installed = hooks(model, opt)
    with pytest.warns(RecorderWarning, match="closed the earlier Recorder of this process"):
        second = cell(tmp_path / "exp.h5", model, opt, 7, **kwargs)
    assert hooks(model, opt) == installed          # the first one's hooks are off the model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first.log({"train/loss": 1.0})             # the old object still takes calls harmlessly
    second.close()
    expected = {"new": {"exp.h5": 10, "exp-2.h5": 7}, "overwrite": {"exp.h5": 7},
                "resume": {"exp.h5": 17}}[mode]
    for name, steps in expected.items():
        with open_run(tmp_path / name) as run:
            assert run.status().state == "finished"
            assert len(run.scalar("train/loss").values) == steps, name
            assert len(run.layer_stat("grad_norm").steps) == steps, name
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == sorted(expected)


def test_a_recorder_on_another_path_is_left_open(tmp_path):
    torch.manual_seed(0)
    model, other = nn.Linear(4, 1), nn.Linear(4, 1)
    a = cell(tmp_path / "a.h5", model, torch.optim.SGD(model.parameters(), lr=0.1), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = cell(tmp_path / "b.h5", other, torch.optim.SGD(other.parameters(), lr=0.1), 3)
    assert not a._closed and not b._closed
    a.close()
    b.close()
