"""A multi-task model (shared trunk, a classification head with cross-entropy and a regression head
with MSE) whose losses are summed over the batch.

The last weight matrix is the one-output regression head, so ``loss_summed`` saw no classes and
said nothing: trial 14, L6 (``multitask/mt.py --bug sum_reduction``, batch 64) read "lr too high,
reduce the learning rate 10x" (the steps were 64x) though the logged ``train/loss_cls`` started
at 104 = 64 x 1.63, a sum of 64 five-class cross-entropies."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

D = 24


class MT(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(D, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        self.cls_head, self.reg_head = nn.Linear(128, 5), nn.Linear(128, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.cls_head(h), self.reg_head(h).squeeze(1)


def _run(path, seed, *, reduction="sum", lr=0.05, log_terms=True, steps=60):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3200, D, generator=g)
    cls = (x @ torch.randn(D, 5, generator=g) + 0.5 * torch.randn(3200, 5, generator=g)).argmax(1)
    reg = torch.tanh(x @ torch.randn(D, generator=g) / 4) + 0.1 * torch.randn(3200, generator=g)
    model = MT()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            i = torch.randint(0, 3200, (64,), generator=g)
            out_cls, out_reg = model(x[i])
            l_cls = F.cross_entropy(out_cls, cls[i], reduction=reduction)
            l_reg = F.mse_loss(out_reg, reg[i], reduction=reduction)
            loss = l_cls + l_reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item(), **({"train/loss_cls": l_cls.item(), "train/loss_reg": l_reg.item()}
                                                   if log_terms else {})})
    return diagnose(path)


@pytest.mark.parametrize("lr", (0.05, 0.05 / 64))
@pytest.mark.parametrize("seed", (0, 1))
def test_a_multitask_sum_is_named_from_its_cross_entropy_term(tmp_path, seed, lr):
    findings = _run(tmp_path / "sum.h5", seed, lr=lr)
    f = next((f for f in findings if f.symptom == "loss_summed"), None)
    assert f is not None, [x.symptom for x in findings]
    assert f.facts["batch_size"] == 64 and 0.7 * 64 <= f.facts["times"] <= 1.3 * 64
    assert f.facts["series"] == "train/loss_cls" and "cls_head" in f.title
    assert f.causes[0].id == "loss_summed" and f.fixes[0].id == "mean_reduction"
    if lr == 0.05:      # the blow-up it causes names the sum, not "reduce the LR 10x" alone
        blown = [x for x in findings if x.symptom in ("divergence", "nan_inf")]
        assert blown and all(x.causes[0].id == "loss_summed" for x in blown)


@pytest.mark.parametrize("seed", (0, 1))
def test_the_multitask_mean_is_not_named(tmp_path, seed):
    findings = _run(tmp_path / "mean.h5", seed, reduction="mean")
    assert "loss_summed" not in [f.symptom for f in findings]


def test_without_the_terms_logged_the_total_is_not_read_as_a_cross_entropy(tmp_path):
    """The total mixes the MSE in: no term says which head's loss it is, nothing is claimed."""
    findings = _run(tmp_path / "total.h5", 0, lr=0.05 / 64, log_terms=False)
    assert "loss_summed" not in [f.symptom for f in findings]
