"""A forward under ``torch.no_grad()`` with the model still in train mode (a test loss right
after ``optimizer.step()``, as pytorch/examples' time_sequence_prediction and super_resolution
do) is not the training forward: the input and activation statistics are the training batch's,
and no record is made past the last optimizer step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainspect import Recorder
from trainspect.analysis import open_run

STEPS = 4


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_a_no_grad_forward_after_the_step_does_not_take_the_statistics(tmp_path, seed, optimizer):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(64, 4) + 3.0          # the training batch
    y = x.sum(1, keepdim=True)
    x_test = torch.randn(8, 4) - 10.0     # far from it: its statistics cannot be mistaken
    opt = (torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5) if optimizer == "lbfgs"
           else torch.optim.SGD(model.parameters(), lr=1e-3))
    path = tmp_path / "run.h5"
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            def closure():
                opt.zero_grad()
                loss = ((model(x) - y) ** 2).mean()
                loss.backward()
                return loss
            loss = opt.step(closure) if optimizer == "lbfgs" else (closure(), opt.step())[0]
            rec.log({"train/loss": loss})
            with torch.no_grad():
                rec.log({"test/loss": ((model(x_test) - x_test.sum(1, keepdim=True)) ** 2).mean()})
    with open_run(path) as run:
        inputs = run.scalar("sys/input_mean")
        assert inputs.steps.tolist() == list(range(STEPS))
        assert inputs.values.tolist() == pytest.approx([float(x.mean())] * STEPS, rel=1e-5)
        assert run.status().last_step == STEPS - 1
        assert run.scalar("test/loss").steps.tolist() == list(range(STEPS))
