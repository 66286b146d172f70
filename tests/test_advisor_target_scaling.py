"""Regression targets left in their own units are named (trial 15, F20: house prices ~2.5e5, an MSE of
6e10 against untrained outputs of std 0.06, read "exploding gradients, bad init 80%, use He init")."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose


def _regression(path, seed, *, standardised):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 12, generator=g)
    price = 2.5e5 + 6e4 * (x @ torch.randn(12, generator=g)) / 3.5
    y = (price - price.mean()) / price.std() if standardised else price
    model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def loss_of():
        i = torch.randint(0, 2048, (64,), generator=g)
        return F.mse_loss(model(x[i]).squeeze(1), y[i])

    return fit_and_diagnose(path, model, opt, loss_of, 300)


@pytest.mark.parametrize("seed", (0, 1))
def test_targets_in_dollars_are_named_over_the_init(tmp_path, seed):
    loud = [f for f in _regression(tmp_path / "raw.h5", seed, standardised=False) if f.severity != "info"]
    assert loud
    for f in loud:
        assert f.causes[0].id == "target_scaling" and f.fixes[0].id == "standardise_targets", (f.symptom, f.causes)


def test_standardised_targets_are_not(tmp_path):
    findings = _regression(tmp_path / "std.h5", 0, standardised=True)
    assert not [f for f in findings if any(c.id == "target_scaling" for c in f.causes)]
