"""A cross-entropy summed over the batch under a hand-written SGD update.

pytorch/examples' word_language_model updates by hand (``p.data.add_(p.grad, alpha=-lr)``) and
watches the model alone: no optimizer in the run. That update is plain SGD, its step grows with
the loss's scale, yet ``loss_summed`` asked for an optimizer and said nothing (user trial 16, M4:
``tabular.py --task sum --opt manual`` read early_plateau, cause "lr too high")."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, *, reduction="sum", lr=0.05, adam_unwatched=False, config=None, steps=120):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 20, generator=g)
    y = (x @ torch.randn(20, 10, generator=g) + 0.5 * torch.randn(2048, 10, generator=g)).argmax(1)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    adam = torch.optim.Adam(model.parameters(), lr=1e-3) if adam_unwatched else None
    with Recorder(path, config=config) as rec:
        rec.watch(model)                       # no optimizer: the update is the script's own
        for _ in range(steps):
            i = torch.randint(0, 2048, (32,), generator=g)
            model.zero_grad()
            loss = F.cross_entropy(model(x[i]), y[i], reduction=reduction)
            loss.backward()
            if adam is not None:
                adam.step()
            else:
                for p in model.parameters():    # word_language_model's update
                    p.data.add_(p.grad, alpha=-lr)
            rec.log({"train/loss": loss.item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_a_sum_under_a_hand_written_sgd_update_is_named(tmp_path, seed):
    findings = _run(tmp_path / "sum.h5", seed)
    f = next((f for f in findings if f.symptom == "loss_summed"), None)
    assert f is not None, [x.symptom for x in findings]
    assert f.facts["batch_size"] == 32 and 0.7 * 32 <= f.facts["times"] <= 1.3 * 32
    assert "hand-written" in f.title and f.fixes[0].id == "mean_reduction"


@pytest.mark.parametrize("seed", (0, 1))
def test_the_mean_under_a_hand_written_update_is_not_named(tmp_path, seed):
    findings = _run(tmp_path / "mean.h5", seed, reduction="mean", lr=0.5)
    assert "loss_summed" not in [f.symptom for f in findings]


def test_an_unwatched_adam_the_config_names_is_not_taken_for_sgd(tmp_path):
    """Adam divides the loss's scale out; a run that names it in its config is not judged."""
    findings = _run(tmp_path / "adam.h5", 0, adam_unwatched=True, config={"optimizer": "Adam", "lr": 1e-3})
    assert "loss_summed" not in [f.symptom for f in findings]
