"""A ReLU layer with a third of its units dead, whose run was still at its best validation loss
when it ended, is a note (trial 15, F12: pytorch/examples' siamese_network at its defaults had 26-32 %
of a 256-unit head dead and 73-76 % of its outputs <= 0 while its validation loss kept falling, and
got "reduce the LR 10x" on 2 of 4 healthy seeds). Most units dead stays a warning."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _train(path, seed, bias, steps=300):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 2))
    nn.init.constant_(model[0].bias, bias)      # how sparse the hidden layer starts
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    w = torch.randn(32, generator=g)
    xv = torch.randn(512, 32, generator=g)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for step in range(steps):
            x = torch.randn(64, 32, generator=g)
            loss = F.cross_entropy(model(x), (x @ w > 0).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
            if step % 50 == 0 or step == steps - 1:
                with torch.no_grad():
                    rec.log({"val/loss": F.cross_entropy(model(xv), (xv @ w > 0).long()).item()})
    return next(f for f in diagnose(path) if f.symptom == "dead_units")


@pytest.mark.parametrize("seed", (0, 1))
def test_a_third_dead_while_still_improving_is_a_note(tmp_path, seed):
    f = _train(tmp_path / "sparse.h5", seed, bias=-1.4)
    assert f.facts["worst_dead"] < 0.5
    assert f.severity == "info" and f.facts["still_improving"] and "still at its best" in f.title


@pytest.mark.parametrize("seed", (0, 1))
def test_most_units_dead_still_warns(tmp_path, seed):
    f = _train(tmp_path / "dead.h5", seed, bias=-1.6)
    assert f.facts["worst_dead"] >= 0.5 and f.severity == "warning"
