"""Labels shuffled apart from their inputs, trained with Adam, are named as such (trial 15, F2: a
tabular MLP and a tiny BERT sat at ln(C) and were told "LR too low, raise it 10x"; Adam's first
steps moved the small weights 1-2 % and the label check wanted no step above 1 %). Adagrad's
shrinking steps at chance stay "LR too low" (the peers' at_slow_adagrad)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _tabular(path, seed, *, shuffled, opt_name="adam"):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3000, 20, generator=g)
    y = (x[:, :10] @ torch.randn(10, 3, generator=g)).argmax(1)
    if shuffled:
        y = y[torch.randperm(3000, generator=g)]
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 128), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(128, 3))
    opt = torch.optim.Adam(model.parameters(), 1e-3) if opt_name == "adam" else \
        torch.optim.Adagrad(model.parameters(), 1e-3)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(8):
            perm = torch.randperm(3000, generator=g)
            for i in range(0, 3000, 64):
                idx = perm[i:i + 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train_loss": loss.item()})
    return next((f for f in diagnose(path) if f.symptom == "no_progress"), None)


@pytest.mark.parametrize("seed", (0, 2))
def test_shuffled_labels_under_adam_are_named(tmp_path, seed):
    f = _tabular(tmp_path / "shuffled.h5", seed, shuffled=True)
    assert f is not None and f.causes[0].id == "label_noise", f.causes if f else None


def test_adagrad_whose_steps_shrank_at_chance_is_not_blamed_on_the_labels(tmp_path):
    f = _tabular(tmp_path / "adagrad.h5", 0, shuffled=True, opt_name="adagrad")
    assert f is not None and f.causes[0].id != "label_noise"
