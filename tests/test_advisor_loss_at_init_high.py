"""The first loss against what an untrained model should cost (Karpathy's "verify loss @ init").

Scores that start large are named, with the init as the cause (trial 15, F14: a BatchNorm ResNet
initialised N(0, 1) started at 6.2 = 2.7x ln(10), ended at accuracy 0.49 against 0.90, and read
"no problems found"). A cross-entropy summed over the batch under SGD is named as such (F13: the
same ResNet with reduction="sum" took 64x steps, "no problems found"); under Adam the sum is
harmless and is not."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _cnn(path, seed, *, init_std=None, reduction="mean", adam=False, lr=None, steps=120):
    """A small BatchNorm CNN on a learnable 10-class task, SGD with momentum (or Adam)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    if init_std is not None:   # "std=1 like the paper"
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, init_std)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if adam else
           torch.optim.SGD(model.parameters(), lr=lr or (0.05 / 32 if reduction == "sum" else 0.05), momentum=0.9))
    proto = torch.randn(10, 3, 8, 8, generator=g)

    def loss_of():
        y = torch.randint(0, 10, (32,), generator=g)
        x = proto[y] + 0.5 * torch.randn(32, 3, 8, 8, generator=g)
        return F.cross_entropy(model(x), y, reduction=reduction)

    return fit_and_diagnose(path, model, opt, loss_of, steps)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_an_n01_init_whose_first_loss_is_far_above_chance_is_named(tmp_path, seed):
    findings = _cnn(tmp_path / "n01.h5", seed, init_std=1.0)
    f = next(f for f in findings if f.symptom == "loss_at_init_high")
    assert f.severity == "warning" and f.causes[0].id == "bad_init"
    assert f.facts["first_loss"] >= 1.5 * f.facts["chance"] and f.facts["output_std"] >= 1.0
    assert f.fixes[0].id == "init_output_small" and "ln(10)" in f.fixes[0].text


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_the_default_init_starts_at_chance_and_is_not_named(tmp_path, seed):
    findings = _cnn(tmp_path / "ok.h5", seed)
    assert "loss_at_init_high" not in [f.symptom for f in findings]


@pytest.mark.parametrize("seed", (0, 1))
def test_a_cross_entropy_summed_over_the_batch_under_sgd_is_named(tmp_path, seed):
    findings = _cnn(tmp_path / "sum.h5", seed, reduction="sum")
    assert "loss_at_init_high" not in [f.symptom for f in findings]    # small scores: not the init
    f = next(f for f in findings if f.symptom == "loss_summed")
    assert f.severity == "warning" and f.causes[0].id == "loss_summed"
    assert f.facts["batch_size"] == 32 and 0.7 * 32 <= f.facts["times"] <= 1.3 * 32
    assert f.fixes[0].id == "mean_reduction"


def test_the_sum_under_adam_which_divides_the_scale_out_is_not_named(tmp_path):
    findings = _cnn(tmp_path / "adam.h5", 0, reduction="sum", adam=True)
    assert "loss_summed" not in [f.symptom for f in findings]


@pytest.mark.parametrize("seed", (0, 1))
def test_the_mean_is_not_named(tmp_path, seed):
    findings = _cnn(tmp_path / "mean.h5", seed)
    assert "loss_summed" not in [f.symptom for f in findings]


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_at_the_lr_tuned_for_the_mean_the_sum_explains_the_large_steps_findings(tmp_path, seed):
    findings = _cnn(tmp_path / "sumlr.h5", seed, reduction="sum", lr=0.05)   # 32x steps
    assert "loss_summed" in [f.symptom for f in findings]
    for f in findings:
        assert f.causes[0].id == "loss_summed", (f.symptom, [c.id for c in f.causes])


@pytest.mark.parametrize("seed", (0, 1))
def test_a_regression_whose_first_mse_happens_to_be_batch_times_ln_c_is_not_named(tmp_path, seed):
    """4 outputs, MSE (mean) on targets around 5 with std 4: the first loss ~41 = 30x ln 4 with
    batches of 32, and a large output-bias gradient, but one of one sign: no softmax's."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=2e-3, momentum=0.9)
    w = torch.randn(8, 4, generator=g)
    path = tmp_path / "reg.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(150):
            x = torch.randn(32, 8, generator=g)
            loss = F.mse_loss(model(x), 5.0 + 1.4 * (x @ w))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    findings = diagnose(path)
    assert "loss_summed" not in [f.symptom for f in findings]
    assert "loss_summed" not in [c.id for f in findings for c in f.causes]


class _CosineHead(nn.Module):
    """A CosFace/ArcFace-style head: cosines of normalised features and class weights, times s."""

    def __init__(self, d, classes, s=30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, d))
        nn.init.xavier_uniform_(self.weight)
        self.s = s

    def forward(self, x):
        return self.s * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T


@pytest.mark.parametrize("seed", (0, 1))
def test_large_scores_by_design_from_standard_weights_are_not_blamed_on_the_init(tmp_path, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), _CosineHead(64, 20))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    proto = torch.randn(20, 16, generator=g)
    path = tmp_path / "cos.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(120):
            y = torch.randint(0, 20, (32,), generator=g)
            loss = F.cross_entropy(model(proto[y] + 0.3 * torch.randn(32, 16, generator=g)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    findings = diagnose(path)
    assert "loss_at_init_high" not in [f.symptom for f in findings]
