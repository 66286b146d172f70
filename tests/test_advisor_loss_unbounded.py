"""A loss that falls without bound is named, and the findings it drives point at it (trial 15, F1:
pytorch/examples' VAE with its KL term's sign flipped went +40 -> -2.3e21; its growing gradients
read "bad init 80%", its wobbles "label noise 70%"). A Gaussian NLL that settles below 0 is not."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.mu, self.logvar = nn.Linear(64, 32), nn.Linear(32, 4), nn.Linear(32, 4)
        self.dec1, self.dec2 = nn.Linear(4, 32), nn.Linear(32, 64)

    def forward(self, x):
        h = F.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.dec2(F.relu(self.dec1(z)))), mu, logvar


def _vae(path, seed, kl_sign):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(200):
            x = (torch.rand(32, 64, generator=g) > 0.5).float()
            recon, mu, logvar = model(x)
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = F.binary_cross_entropy(recon, x, reduction="sum") + kl_sign * kld
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item() / 32})
    return diagnose(path)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_kl_term_with_its_sign_flipped_is_named(tmp_path, seed):
    findings = _vae(tmp_path / "vae.h5", seed, kl_sign=-1)
    f = next(f for f in findings if f.symptom == "loss_unbounded")
    assert f.severity == "error" and f.causes[0].id == "loss_sign" and f.facts["lowest"] < -1e3 * f.facts["first"]
    for other in findings:
        if other.severity != "info" and other.causes:
            assert other.causes[0].id == "loss_sign", (other.symptom, other.causes[0])


def test_the_same_vae_with_the_kl_added_is_not(tmp_path):
    findings = _vae(tmp_path / "vae.h5", 0, kl_sign=1)
    assert "loss_unbounded" not in [f.symptom for f in findings]


def test_a_gaussian_nll_that_settles_below_zero_is_not(tmp_path):
    with Recorder(tmp_path / "nll.h5") as rec:
        for step in range(200):
            rec.log({"train/loss": 1.0 - 3.5 * (1 - math.exp(-step / 40))}, step=step)
    assert "loss_unbounded" not in [f.symptom for f in diagnose(tmp_path / "nll.h5")]


def _classifier(path, seed, loss_of):
    """An MLP classifier with a raw Linear head (10 classes) trained on ``loss_of(output, x, y)``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def batch_loss():
        x = torch.randn(32, 16, generator=g)
        y = (x[:, :10].argmax(1))
        return loss_of(model(x), x, y)

    return fit_and_diagnose(path, model, opt, batch_loss, 150)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_nll_loss_fed_logits_is_named(tmp_path, seed):
    """pytorch/examples' mnist without its log_softmax (trial 17, F12): the fix talked about a VAE's KL term."""
    findings = _classifier(tmp_path / "nll.h5", seed, lambda out, x, y: F.nll_loss(out, y))
    f = next(f for f in findings if f.symptom == "loss_unbounded")
    assert f.causes[0].id == "nll_on_logits"
    assert "log_softmax" in f.fixes[0].text
    for other in findings:
        if other.severity != "info" and other.causes and other.symptom != "loss_unbounded":
            assert other.causes[0].id == "nll_on_logits", (other.symptom, other.causes[0])


@pytest.mark.parametrize("seed", (0, 1))
def test_a_squared_error_with_its_sign_flipped_stays_a_sign_error(tmp_path, seed):
    """-MSE runs away as the square of the outputs, far past their size: not an NLL of logits."""
    findings = _classifier(tmp_path / "mse.h5", seed,
                           lambda out, x, y: -F.mse_loss(out, F.one_hot(y, 10).float()))
    f = next(f for f in findings if f.symptom == "loss_unbounded")
    assert f.causes[0].id == "loss_sign" and not f.facts["nll_on_logits"]
