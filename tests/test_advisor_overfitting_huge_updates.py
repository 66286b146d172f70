"""Overfitting under updates of several % of the weights per step names the LR (trial 14: GCN at
100x its LR, Adam at lr 1, moved its weights 10 % per step; the validation loss rose 125 % from
step 8 and the causes named regularisation, input scaling and labels, never the LR)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _overfit(path, seed, lr):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(16, 4, generator=g)
    xt = torch.randn(48, 16, generator=g)
    yt = (xt @ w + 1.5 * torch.randn(48, 4, generator=g)).argmax(1)     # 48 noisy training samples
    xv = torch.randn(256, 16, generator=g)
    yv = (xv @ w).argmax(1)
    model = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 4))
    opt = torch.optim.Adam(model.parameters(), lr)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for step in range(200):
            loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
            if step % 5 == 0:
                with torch.no_grad():
                    rec.log({"val/loss": F.cross_entropy(model(xv), yv).item()})
    return next((f for f in diagnose(path) if f.symptom == "overfitting"), None)


@pytest.mark.parametrize("seed", (1, 2))
def test_overfitting_under_huge_updates_names_the_lr(tmp_path, seed):
    f = _overfit(tmp_path / "hi.h5", seed, 0.1)
    assert f is not None
    lr = next(c for c in f.causes if c.id == "lr_too_high")
    assert lr.confidence >= 0.7 and "of their size" in lr.why


@pytest.mark.parametrize("seed", (0, 1))
def test_overfitting_at_a_usual_lr_blames_regularisation(tmp_path, seed):
    f = _overfit(tmp_path / "ok.h5", seed, 3e-3)
    assert f is not None and f.causes[0].id == "insufficient_regularization"
    assert "of their size" not in " ".join(c.why for c in f.causes)
