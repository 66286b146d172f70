"""An LR schedule that never reached its LR is a finding of its own (trial 14): a timm-style
per-update schedule stepped with the epoch number (LR 0 for the whole first epoch, 0.24x the
target at the end) and an HF warm-up longer than the run read "no problems found" whenever the
noisy loss did not trip slow_convergence. A live run's schedule has not ended: not judged, and
"not checked" says so."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.analysis.advisor.coverage import coverage
from trainspect.recorder import Recorder

EPOCH = 20


def _train(rec, seed, lr_at, steps=160):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rec.watch(model, opt)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x = torch.randn(64, 10, generator=g)
        loss = F.cross_entropy(model(x), (x[:, :2].sum(1) > 0).long() + 2 * (x[:, 2] > 0).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.item()})


def warmup(updates, peak=1e-3, over=50):
    return peak * min(1.0, updates / over)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_per_update_schedule_stepped_per_epoch_is_named(tmp_path, seed):
    with Recorder(tmp_path / "epoch.h5") as rec:
        _train(rec, seed, lambda step: warmup(step // EPOCH))      # the bug: the epoch where the update count goes
    f = next(f for f in diagnose(tmp_path / "epoch.h5") if f.symptom == "warmup_unfinished")
    assert f.severity == "warning" and f.facts["zero_steps"] == EPOCH
    assert f.fixes[0].id == "check_lr_schedule" and f"exactly 0 at {EPOCH} optimizer steps" in f.fixes[0].text


@pytest.mark.parametrize("seed", (0, 1))
def test_the_same_schedule_stepped_per_update_is_not(tmp_path, seed):
    with Recorder(tmp_path / "update.h5") as rec:
        _train(rec, seed, warmup)
    assert "warmup_unfinished" not in [f.symptom for f in diagnose(tmp_path / "update.h5")]


def test_a_warmup_longer_than_the_run_is_named_once_finished_and_not_while_live(tmp_path):
    path = tmp_path / "long.h5"
    rec = Recorder(path)
    try:
        _train(rec, 0, lambda step: warmup(step + 1, over=3000))
        rec.flush()
        assert "warmup_unfinished" not in [f.symptom for f in diagnose(path)]
        assert any("still being written" in line for line in coverage(path).lines())
    finally:
        rec.close()
    f = next(f for f in diagnose(path) if f.symptom == "warmup_unfinished")
    assert f.facts["still_rising"] and "still rising" in f.title
    assert not any("still being written" in line for line in coverage(path).lines())
