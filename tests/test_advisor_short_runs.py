"""Runs with fewer loss points than the curve rules need (a full-batch LBFGS run logs one per
optimizer step: pytorch/examples' time_sequence_prediction has 15): an 8-step blow-up from
6.9e-05 to 4.7e+25 read "no problems found", exit 0, with nothing under "not checked"."""
from __future__ import annotations

import pytest
import torch
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.coverage import coverage
from trainspect.recorder import Recorder


def _run(path, seed, lr, steps):
    torch.manual_seed(seed)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_short_run_that_blows_up_is_an_error(tmp_path, seed):
    path = _run(tmp_path / "r.h5", seed, lr=3.0, steps=12)
    found = {f.symptom: f for f in diagnose(path)}
    f = found["divergence"]
    assert f.severity == "error" and f.facts["short_run"] and f.causes[0].id == "lr_too_high"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_short_healthy_run_is_silent_but_says_its_curve_was_not_judged(tmp_path, seed):
    path = _run(tmp_path / "r.h5", seed, lr=0.05, steps=12)
    assert diagnose(path) == []
    with open_run(path) as run:
        gaps = coverage(run).gaps
    assert gaps[0].instrument == "loss" and "12 point(s), too few" in gaps[0].text
    long = _run(tmp_path / "long.h5", seed, lr=0.05, steps=25)
    with open_run(long) as run:
        assert all(g.instrument != "loss" for g in coverage(run).gaps)
