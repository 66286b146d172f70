"""A confident binary classifier's output Sigmoid sits at its bounds: a note when the model trained
well, not 'activation choice' (user trial: Sigmoid + BCELoss at validation loss 0.074 warned)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _binary(path, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    w = torch.randn(16, generator=g)
    crit = nn.BCELoss()
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(300):
            x = torch.randn(64, 16, generator=g)
            y = ((x @ w) + 0.5 * torch.randn(64, generator=g) > 0).float()
            loss = crit(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_confident_sigmoid_output_that_trained_well_is_a_note(tmp_path, seed):
    f = next(f for f in _binary(tmp_path / "bce.h5", seed) if f.symptom == "saturated_activations")
    assert f.severity == "info" and "trained well" in f.title

