"""Resuming from a checkpoint at step S: the recorder's own records restart at S too.

The Recorder docstring said ``set_step(S)`` *or* ``step=`` would do; with ``log(step=S)`` alone
the gradient and LR records went on from the killed session's last step + 1 (100 steps off the
loss, the old rows never superseded) without a word. Now: a warning that names set_step(); and
set_step() before watch() is kept (watch() reset the count to the last step + 1).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def _session(path, start, stop, resume, set_step=None):
    torch.manual_seed(start)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, resume=resume) as rec:
            if set_step == "before watch":
                rec.set_step(start)
            rec.watch(model, opt)
            if set_step == "after watch":
                rec.set_step(start)
            for s in range(start, stop):
                opt.zero_grad()
                loss = (model(torch.randn(16, 8)) ** 2).mean()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()}, step=s)
    return [str(w.message) for w in caught if "trainspect" in str(w.message)]


@pytest.mark.parametrize("set_step", ["before watch", "after watch"])
def test_set_step_restarts_every_record_at_the_checkpoint(tmp_path, set_step):
    path = tmp_path / "run.h5"
    _session(path, 0, 300, resume=False)
    said = _session(path, 200, 400, resume=True, set_step=set_step)
    assert said == []
    with open_run(path) as run:
        assert run.scalar("train/loss").steps.tolist() == list(range(400))
        assert run.scalar("sys/grad_norm").steps.tolist() == list(range(400))


def test_step_alone_on_a_resumed_run_says_to_call_set_step(tmp_path):
    path = tmp_path / "run.h5"
    _session(path, 0, 300, resume=False)
    said = _session(path, 200, 250, resume=True)
    assert len(said) == 1 and "resumed run: log(step=200)" in said[0] and "rec.set_step(" in said[0]
