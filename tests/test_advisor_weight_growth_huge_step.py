"""An LR the size of the weights themselves is a warning even when the weights grew less than 5x
(trial 15, F16: a tiny GPT at 30x its LR, 0.976x the weights' RMS, grew them 4.4x, stalled at 3.9
against 1.77 and read "no problems found"); "reduce the LR" comes before "add a warm-up" there."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _tiny_lm(path, seed, lr, steps=150):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Embedding(40, 32), nn.Flatten(), nn.Linear(32 * 8, 64), nn.GELU(), nn.Linear(64, 40))
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=0.1)
    next_token = torch.randint(0, 40, (40,), generator=g)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x = torch.randint(0, 40, (64, 8), generator=g)
            loss = F.cross_entropy(model(x), next_token[x[:, -1]])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            rec.log({"train/loss": loss.item()})
    return next(f for f in diagnose(path) if f.symptom == "weight_growth")


@pytest.mark.parametrize("seed", (0, 1))
def test_steps_of_the_weights_own_size_warn(tmp_path, seed):
    f = _tiny_lm(tmp_path / "hi.h5", seed, 0.1)
    assert f.facts["median_growth"] < 5 and f.facts["lr_over_rms"] >= 0.75
    assert f.severity == "warning" and f.fixes[0].id == "lower_lr"


def test_a_third_of_that_stays_a_note(tmp_path):
    f = _tiny_lm(tmp_path / "mid.h5", 0, 0.03)
    assert f.severity == "info" and f.facts["lr_over_rms"] < 0.75


def _tanh_net_small_init(path, seed, lr=0.05, steps=200):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)        # BERT's initializer_range
    opt = torch.optim.Adam(model.parameters(), lr)
    w = torch.randn(32, 4, generator=g)

    def loss_of():
        x = torch.randn(64, 32, generator=g)
        return F.cross_entropy(model(x), (x @ w).argmax(1))

    return fit_and_diagnose(path, model, opt, loss_of, steps)


@pytest.mark.parametrize("seed", (0, 1))
def test_the_other_findings_of_a_run_whose_lr_grew_the_weights_blame_that_lr(tmp_path, seed):
    """A tiny BERT at 30x its LR had its flat loss blamed on "bad init 90%" (the 0.02-std init) and its
    vanishing gradients on tanh (trial 15, F3): the weight growth under an LR of 2.25x the weights'
    scale explains them too."""
    findings = _tanh_net_small_init(tmp_path / "bert_like.h5", seed)
    assert any(f.symptom == "weight_growth" and f.severity == "warning" for f in findings)
    others = [f for f in findings if f.symptom != "weight_growth" and f.severity != "info"]
    assert others
    for f in others:
        assert f.causes[0].id == "lr_too_high" and "see weight_growth" in f.causes[0].why
        assert all(c.confidence < 0.2 for c in f.causes if c.id in ("bad_init", "activation_choice"))
