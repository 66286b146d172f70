"""One term of a multi-task loss outweighing another (trial 14, M1): a classification head (cross-
entropy) and a regression head whose target, an age of 30 +- 8 years, was never standardised.
The total fell 99.7 % and the advisor said "the model trained well"; the classification loss
barely moved and validation accuracy ended at 39 % (88 % with the target standardised)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.cls_head, self.reg_head = nn.Linear(64, 5), nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.cls_head(h), self.reg_head(h).squeeze(1)


def _train(path, seed, *, standardised, reg_weight=1.0, epochs=10):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1600, 24, generator=g)
    cls = (x @ torch.randn(24, 5, generator=g) + 0.5 * torch.randn(1600, 5, generator=g)).argmax(1)
    age = 30.0 + 8.0 * torch.tanh(x @ torch.randn(24, generator=g) / 4) + torch.randn(1600, generator=g)
    target = (age - age.mean()) / age.std() if standardised else age
    model = MultiTask()
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(epochs):
            perm = torch.randperm(1600, generator=g)
            for b in range(0, 1600, 64):
                i = perm[b:b + 64]
                logits, pred = model(x[i])
                l_cls, l_reg = F.cross_entropy(logits, cls[i]), F.mse_loss(pred, target[i])
                loss = l_cls + reg_weight * l_reg
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss, "train/loss_cls": l_cls, "train/loss_reg": l_reg})
    return diagnose(path)


@pytest.mark.parametrize("seed,weight", [(0, 1.0), (1, 1.0), (2, 0.5)])
def test_an_unstandardised_regression_target_that_drowns_the_other_task_is_named(tmp_path, seed, weight):
    findings = _train(tmp_path / "mt.h5", seed, standardised=False, reg_weight=weight)
    f = next(f for f in findings if f.symptom == "loss_term_dominates")
    assert f.severity == "warning" and f.facts["big"] == "train/loss_reg" and f.facts["small"] == "train/loss_cls"
    assert f.causes[0].id == "loss_terms_unbalanced" and f.fixes[0].id == "standardise_target"


@pytest.mark.parametrize("seed", (0, 1))
def test_terms_on_one_scale_are_not(tmp_path, seed):
    findings = _train(tmp_path / "mt.h5", seed, standardised=True)
    assert "loss_term_dominates" not in [f.symptom for f in findings]
