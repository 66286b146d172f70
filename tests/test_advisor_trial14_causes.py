"""Causes the advisor got wrong on new third-party training code (trial 14):

- a healthy LoRA run of <= 200 steps has only its step-0 weight snapshot, where LoRA's B is zero
  by design: it read as "symmetric weights, use He init";
- an AdamW run at lr 1e-4 stopped after 150 steps, its loss still near ln(10), got "label noise
  70 %" (its weights had moved 7 % in all; shuffled labels at a working LR move them > 100 %);
- a loss that fell to a level in its first points and then sat there while the weights kept
  changing by several times their size (T5 at 30x its LR) got "raise the LR 10x".
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

SEEDS = (0, 1, 2)


def _data(seed, n=2048, classes=10):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, classes, generator=g)
    return x, (x @ w).argmax(1)


class LoRALinear(nn.Module):
    """A frozen base layer plus a rank-4 update B @ A, B zero at the start (the adapter starts as the identity)."""

    def __init__(self, base: nn.Linear, rank=4):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.A = nn.Linear(base.in_features, rank, bias=False)
        self.B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.B.weight)

    def forward(self, x):
        return self.base(x) + self.B(self.A(x))


def _lora(path, seed, steps=150, optimizer_before_adapters=False):
    torch.manual_seed(seed)
    x, y = _data(seed)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3) if optimizer_before_adapters else None
    model[0], model[2] = LoRALinear(model[0]), LoRALinear(model[2])
    if opt is None:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    # The HF/peft recipe's linear warm-up from 0: step 0 leaves B at zero for the step-0 snapshot.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, k / 20))
    g = torch.Generator().manual_seed(seed)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for i in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=g)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            rec.log({"train/loss": loss.item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_zero_initialised_lora_b_that_trains_is_not_a_symmetric_init(tmp_path, seed):
    findings = _lora(tmp_path / "lora.h5", seed)
    assert "symmetric_weights" not in [f.symptom for f in findings]
    for f in findings:
        assert not f.causes or f.causes[0].id != "bad_init", (f.symptom, f.causes[0])


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_adapters_outside_the_optimizer_are_an_optimizer_setup_not_an_init(tmp_path, seed):
    findings = _lora(tmp_path / "lora.h5", seed, optimizer_before_adapters=True)
    symptoms = [f.symptom for f in findings]
    assert "symmetric_weights" not in symptoms and "frozen_layers" in symptoms
    for f in findings:
        if f.causes and f.severity != "info":
            assert f.causes[0].id == "optimizer_setup", (f.symptom, f.causes[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_run_too_short_at_a_low_lr_is_not_read_as_shuffled_labels(tmp_path, seed):
    torch.manual_seed(seed)
    x, y = _data(seed)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    with Recorder(tmp_path / "low.h5") as rec:
        rec.watch(model, opt)
        for i in range(150):
            idx = torch.randint(0, len(x), (64,), generator=g)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    findings = diagnose(tmp_path / "low.h5")
    stalled = [f for f in findings if f.symptom == "no_progress"]
    assert stalled and stalled[0].causes[0].id == "lr_too_low"
    assert "label_noise" not in [c.id for c in stalled[0].causes]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loss_stuck_after_its_first_point_under_large_steps_blames_the_lr(tmp_path, seed):
    """The logged loss is a T5-like curve (the HF Trainer logs the mean of its first steps, above
    the level, then a flat ln(10)); the weights really change, by Adam at lr 2e-3 (1.5x their
    size in all, at an update/weight ratio of ~4e-3 that says nothing by itself)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.randn(64, 20, generator=g)
    with Recorder(tmp_path / "stuck.h5") as rec:
        rec.watch(model, opt)
        for i in range(300):
            out = model(x + 0.1 * torch.randn(64, 20, generator=g))
            loss = (out - 5 * torch.randn(64, 10, generator=g)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            shown = 3.3 if i == 0 else math.log(10) + 0.02 * float(torch.randn((), generator=g))
            rec.log({"train/loss": shown})
    findings = diagnose(tmp_path / "stuck.h5")
    for f in findings:
        ids = [c.id for c in f.causes]
        if "lr_too_low" in ids or "lr_too_high" in ids:
            assert f.causes[0].id != "lr_too_low", (f.symptom, f.causes)
    assert all(fix.id != "raise_lr" for f in findings for fix in f.fixes)
