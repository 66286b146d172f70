"""A param group given lr 0.0 (trial 17, F3: nanoGPT's decay group, a config typo) is named: the
advice was "check the optimizer's parameter list" and the headline "cannot improve: the weights
moved 0.00%" sat over a loss the other group (biases) still lowered. A warm-up from 0 is not one."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, *, decay_lr, warmup=False, steps=150, bias_lr=3e-3):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    matrices = [p for p in model.parameters() if p.dim() == 2]
    biases = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": matrices, "lr": decay_lr, "weight_decay": 0.1},
                             {"params": biases, "weight_decay": 0.0}], lr=bias_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / 20)) if warmup else None
    w = torch.randn(16, 4, generator=g)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x = torch.randn(64, 16, generator=g)
            loss = F.cross_entropy(model(x), (x @ w).argmax(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            rec.log({"train/loss": loss.item()})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_a_param_group_with_lr_zero_is_named(tmp_path, seed):
    found = _run(tmp_path / "run.h5", seed, decay_lr=0.0)
    f = found["frozen_layers"]
    assert f.title.startswith("param group 0 (2 parameters) has a learning rate of exactly 0"), f.title
    assert f.causes[0].id == "optimizer_setup" and "param group 0" in f.causes[0].why
    assert f.fixes[0].id == "zero_lr_group" and "param group 0" in f.fixes[0].text
    if "no_progress" in found:      # its headline names the group, not "cannot improve"
        assert "cannot improve" not in found["no_progress"].title
        assert found["no_progress"].fixes[0].id == "zero_lr_group"


@pytest.mark.parametrize("seed", (0, 1))
def test_a_warm_up_from_zero_is_not_a_zero_lr_group(tmp_path, seed):
    found = _run(tmp_path / "run.h5", seed, decay_lr=3e-3, warmup=True)
    assert "param group" not in " ".join(f.title for f in found.values())
    assert all(fix.id != "zero_lr_group" for f in found.values() for fix in f.fixes)


@pytest.mark.parametrize("seed", (0, 1))
def test_every_group_at_lr_zero_is_never_told_to_raise_the_lr(tmp_path, seed):
    """A LoRA run whose only trainable group had lr 0 (trial 18, U1) listed "raise the learning
    rate 10x" among the fixes of its flat loss: ten times 0 is still 0."""
    found = _run(tmp_path / "run.h5", seed, decay_lr=0.0, bias_lr=0.0)
    assert found["frozen_layers"].fixes[0].id == "zero_lr_group"
    for f in found.values():
        assert "lr_too_low" not in [c.id for c in f.causes], (f.symptom, f.causes)
        assert not any("raise the learning rate" in fix.text for fix in f.fixes), (f.symptom, f.fixes)
