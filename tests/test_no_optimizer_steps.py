"""A model watched without an optimizer (pytorch/examples' word_language_model updates its
parameters by hand): a validation loss logged after an eval pass took a step of its own, which
repeated the last training step's gradients, and every later epoch was shifted by one step."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def _manual_sgd(path, seed, *, epochs=3, iters=5, val=True, set_step=None):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model)
        if set_step is not None:
            rec.set_step(set_step)
        for _ in range(epochs):
            model.train()
            for _ in range(iters):
                model.zero_grad()
                loss = ((model(x) - y) ** 2).mean()
                loss.backward()
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-0.01)
                rec.log({"train/loss": loss})
                rec.log({"lr": 0.01})                 # a second call in the same iteration
            if val:
                model.eval()
                with torch.no_grad():
                    v = ((model(x) - y) ** 2).mean()
                rec.log({"val/loss": v})
    return open_run(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_validation_stays_on_the_last_training_step(tmp_path, seed):
    with _manual_sgd(tmp_path / "r.h5", seed) as run:
        assert run.scalar("train/loss").steps.tolist() == list(range(15))
        assert run.scalar("lr").steps.tolist() == list(range(15))
        assert run.scalar("val/loss").steps.tolist() == [4, 9, 14]
        assert run.scalar("sys/grad_norm").steps.tolist() == list(range(15))    # once per iteration
        assert run.layer_stat("act_mean").steps.tolist() == list(range(15))
        assert run.max_step == 14


def test_set_step_numbers_the_next_iteration(tmp_path):
    with _manual_sgd(tmp_path / "r.h5", 0, epochs=1, iters=3, val=False, set_step=100) as run:
        assert run.scalar("train/loss").steps.tolist() == [100, 101, 102]


def test_without_a_model_each_log_call_is_a_step(tmp_path):
    with Recorder(tmp_path / "r.h5") as rec:
        for i in range(3):
            rec.log({"a": float(i)})
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar("a").steps.tolist() == [0, 1, 2]
