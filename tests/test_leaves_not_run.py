"""Leaves that do not run in a captured forward: the recorder writes NaN for "not measured",
which the advisor read as a non-finite model (ERROR nan_inf, "reduce the LR 10x") on a healthy
run: an auxiliary head called every other step, and a model run under
``checkpoint(model, x, use_reentrant=False)``, whose re-run inside backward (stopped early,
before the last layer) replaced the step's capture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


class AuxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head, self.aux = nn.Linear(16, 32), nn.Linear(32, 1), nn.Linear(32, 1)

    def forward(self, x, aux=False):
        h = torch.relu(self.body(x))
        return self.head(h) + (self.aux(h) if aux else 0)


def _train(path, seed, model, forward, steps=40):
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for step in range(steps):
            loss = (forward(model, x, step) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(path) as run:
        acts = run.layer_stat("act_mean")
        table = dict(zip(acts.layers, np.asarray(acts.values, np.float64).T))
    return table, {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_head_that_runs_every_other_step_is_not_a_nan(tmp_path, seed):
    torch.manual_seed(seed)
    acts, found = _train(tmp_path / "r.h5", seed, AuxNet(), lambda m, x, step: m(x, aux=step % 2 == 0))
    assert np.isnan(acts["aux"][1::2]).all() and np.isfinite(acts["aux"][0::2]).all()   # "not measured"
    assert "nan_inf" not in found


@pytest.mark.parametrize("seed", [0, 1])
def test_a_checkpointed_model_keeps_the_statistics_of_its_forward(tmp_path, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    acts, found = _train(tmp_path / "r.h5", seed, model,
                         lambda m, x, step: checkpoint(m, x, use_reentrant=False))
    assert all(np.isfinite(v).all() for v in acts.values())
    assert "nan_inf" not in found


def test_a_real_nan_activation_is_still_found(tmp_path):
    class NanAfter(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            h = self.a(x)
            return self.b(h * float("nan") if self.calls > 20 else h)

    acts, found = _train(tmp_path / "r.h5", 0, NanAfter(), lambda m, x, step: m(x))
    assert "nan_inf" in found and found["nan_inf"].first_step == 20
