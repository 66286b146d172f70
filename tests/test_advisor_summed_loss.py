"""loss.backward() on a cross-entropy summed over a batch of 256 (reduction='sum'): gradients and
steps 256x too large, a NaN within steps. The advisor said "reduce the LR 10x", which helps, but
not that the loss was summed, though its first value (~256 x ln 10) says so."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, reduction, lr):
    torch.manual_seed(seed)
    x = torch.randn(2048, 32)
    y = (x @ torch.randn(32, 10)).argmax(1)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(60):
            i = torch.randint(0, 2048, (256,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i], reduction=reduction)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    return [fix.id for f in diagnose(path) for fix in f.fixes]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_loss_summed_over_the_batch_is_named(tmp_path, seed):
    # measured by loss_summed (its own fix), or guessed by the LR fixes from the first loss alone
    fixes = _run(tmp_path / "r.h5", seed, "sum", 0.1)
    assert "mean_reduction" in fixes or "check_loss_reduction" in fixes


@pytest.mark.parametrize("seed", [0, 1])
def test_a_mean_loss_at_a_high_lr_gets_no_reduction_hint(tmp_path, seed):
    fixes = _run(tmp_path / "r.h5", seed, "mean", 50.0)
    assert "lower_lr" in fixes and "check_loss_reduction" not in fixes and "mean_reduction" not in fixes


@pytest.mark.parametrize("seed", [0, 1])
def test_an_autoencoder_summing_over_its_pixels_gets_no_reduction_hint(tmp_path, seed):
    """pytorch/examples' VAE: BCE summed over 784 pixels, per sample, as a VAE's ELBO is. Its
    784 outputs were read as classes ("83x ln(784): summed over the batch?")."""
    torch.manual_seed(seed)
    x = torch.rand(2048, 64)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    path = tmp_path / "r.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(60):
            xb = x[torch.randint(0, 2048, (128,))]
            loss = nn.functional.binary_cross_entropy(model(xb), xb, reduction="sum") / len(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    fixes = [fix.id for f in diagnose(path) for fix in f.fixes]
    assert "check_loss_reduction" not in fixes


@pytest.mark.parametrize("seed", [0, 1])
def test_raw_pixel_inputs_get_no_reduction_hint(tmp_path, seed):
    """0-255 inputs make the first loss large themselves (9x ln 10), which unnormalized_inputs
    already names: the "summed over the batch?" hint sent the user to a correct loss call."""
    torch.manual_seed(seed)
    x = torch.rand(2048, 32) * 255
    y = (x @ torch.randn(32, 10)).argmax(1)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    path = tmp_path / "r.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(60):
            i = torch.randint(0, 2048, (64,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    found = diagnose(path)
    assert "unnormalized_inputs" in {f.symptom for f in found}
    assert "check_loss_reduction" not in [fix.id for f in found for fix in f.fixes]
