"""Histograms and weight snapshots (every 200 steps by default) of a run counting from 1.

The HF Trainer and Lightning number steps from 1: the first histogram came at step 200, so a
short fine-tuning run had none, and diagnose told a user who records with trainspect to
"record with trainspect". The first step a run records gets them, as step 0 of a plain loop does.
"""
from __future__ import annotations

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def _train(path, seed, first_step, steps):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        rec.set_step(first_step)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
    with open_run(path) as run:
        return (run.histograms("weight").steps.tolist(), run.snapshots().steps.tolist(),
                run.layer_stat("grad_norm").steps.tolist())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_run_counting_from_one_gets_a_first_histogram_and_snapshot(tmp_path, seed):
    hists, snaps, grads = _train(tmp_path / "run.h5", seed, first_step=1, steps=30)
    assert grads[0] == 1
    assert hists == [1] and snaps == [1]


def test_a_run_from_zero_keeps_its_schedule(tmp_path):
    hists, snaps, _ = _train(tmp_path / "run.h5", 0, first_step=0, steps=401)
    assert hists == [0, 200, 400] and snaps == [0, 200, 400]
