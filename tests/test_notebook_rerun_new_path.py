"""A notebook cell run again with a new run path, on the same model.

The first Recorder stayed open with its hooks on the model: it recorded every step of the
second run as its own (gradients at steps 0..5 for 3 steps of its own) and read "live" for
ever. watch() now closes an earlier Recorder of this process that watches the same model,
with a warning, unless it is in use inside its ``with`` block or a framework integration
manages it (two Lightning loggers of one fit, tests/test_integration_lightning.py).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.analysis.vocab import RunState
from trainspect.recorder import Recorder


def _steps(model, opt, rec, n=3):
    for _ in range(n):
        opt.zero_grad()
        loss = model(torch.randn(4, 3)).pow(2).mean()
        loss.backward()
        opt.step()
        rec.log({"loss": loss.item()})


@pytest.mark.parametrize("first_steps", [3, 0])   # 0: the first cell failed before training
def test_rerun_closes_the_earlier_recorder_of_the_same_model(tmp_path, first_steps):
    torch.manual_seed(first_steps)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = Recorder(tmp_path / "first.h5")
    first.watch(model, opt)
    _steps(model, opt, first, first_steps)
    second = Recorder(tmp_path / "second.h5")
    with pytest.warns(UserWarning, match=r"closed the earlier Recorder .*first\.h5.*same Linear"):
        second.watch(model, opt)
    _steps(model, opt, second)
    second.close()
    with open_run(tmp_path / "first.h5") as run:
        assert run.status().state == RunState.FINISHED
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(first_steps))
    with open_run(tmp_path / "second.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]


def test_recorders_of_other_models_and_one_in_use_are_kept(tmp_path):
    g, d = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (g, d))
    rec_g, rec_d = Recorder(tmp_path / "g.h5"), Recorder(tmp_path / "d.h5")   # a GAN without `with`
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec_g.watch(g, opt_g)
        rec_d.watch(d, opt_d)
    assert not rec_g._closed and not rec_d._closed
    rec_g.close()
    rec_d.close()
    with Recorder(tmp_path / "outer.h5") as outer:
        outer.watch(g, opt_g)
        _steps(g, opt_g, outer)
        inner = Recorder(tmp_path / "inner.h5")
        inner.watch(g, opt_g)
        assert not outer._closed
        inner.close()
