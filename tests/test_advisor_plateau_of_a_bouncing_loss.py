"""pytorch/examples' regression (a Linear(4, 1) on polynomial features, a hand-written update)
at 10x its LR: the loss bounces between ~3 and ~70, and the first finding, early_plateau, said
"model too small" and "raise the LR 10x" above loss_spikes' "reduce the LR 10x". The plateau is
the mean level of a loss thrown around: its cause is the LR being too high."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _regression(path, seed, lr, batches=1500):
    torch.manual_seed(seed)
    w_target, b_target = torch.randn(4, 1) * 5, torch.randn(1) * 5
    fc = torch.nn.Linear(4, 1)
    with Recorder(path) as rec:
        rec.watch(fc)
        for _ in range(batches):
            x = torch.randn(32).unsqueeze(1)
            x = torch.cat([x ** i for i in range(1, 5)], 1)
            y = x.mm(w_target) + b_target.item()
            fc.zero_grad()
            loss = F.smooth_l1_loss(fc(x), y)
            loss.backward()
            for p in fc.parameters():
                p.data.add_(-lr * p.grad)
            rec.log({"train/loss": loss.item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_plateau_of_a_bouncing_loss_blames_the_lr_not_the_model(tmp_path, seed):
    found = _regression(tmp_path / "r.h5", seed, lr=1.0)
    raised = [f.symptom for f in found for c in f.causes[:1] if c.id == "lr_too_low"]
    assert not raised, [(f.symptom, [c.id for c in f.causes]) for f in found]
    for f in found:
        if f.symptom == "early_plateau":
            assert f.causes[0].id == "lr_too_high"
            assert all(fix.id != "raise_lr" for fix in f.fixes), f.fix_texts
    assert any(f.symptom in ("loss_spikes", "loss_oscillation", "early_plateau") for f in found)
