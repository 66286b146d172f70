"""A confident binary classifier's output Sigmoid sits at its bounds: a note when the model trained
well, not 'activation choice' (user trial: Sigmoid + BCELoss at validation loss 0.074 warned)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from scenario_kit import fit_and_diagnose


def _binary(path, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    w = torch.randn(16, generator=g)
    crit = nn.BCELoss()

    def loss_of():
        x = torch.randn(64, 16, generator=g)
        y = ((x @ w) + 0.5 * torch.randn(64, generator=g) > 0).float()
        return crit(model(x).squeeze(1), y)

    return fit_and_diagnose(path, model, opt, loss_of, 300)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_confident_sigmoid_output_that_trained_well_is_a_note(tmp_path, seed):
    f = next(f for f in _binary(tmp_path / "bce.h5", seed) if f.symptom == "saturated_activations")
    assert f.severity == "info" and "trained well" in f.title

