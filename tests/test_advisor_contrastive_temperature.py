"""A contrastive loss held at its chance level by its temperature names the temperature, not the LR
(trial 14, L2: SimCLR's NT-Xent at T = 5 went 5.52 -> 5.41, near ln(2N - 1) = 5.54, with its
weights moving 377 % of their size under Adam 3e-3, and read "lr too low, raise the LR 10x")."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose


def _digits():
    from sklearn.datasets import load_digits
    x, _ = load_digits(return_X_y=True)
    return torch.tensor(x, dtype=torch.float32) / 16.0


def _augment(x, g):
    img = x.view(-1, 8, 8)
    shift = tuple(int(v) for v in torch.randint(-1, 2, (2,), generator=g))
    img = torch.roll(img, shifts=shift, dims=(1, 2))
    img = img * (torch.rand(img.shape, generator=g) > 0.2) + 0.1 * torch.randn(img.shape, generator=g)
    return img.reshape(-1, 64)


def _nt_xent(features, n, temperature):
    """sthalles/SimCLR's info_nce_loss: each of the 2n views against the 2n - 1 others."""
    z = F.normalize(features, dim=1)
    sim = z @ z.T
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim / temperature, positive)


def _simclr(path, seed, temperature, steps=200, n=64):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = _digits()
    model = nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)

    def loss_of():
        xb = x[torch.randint(0, len(x), (n,), generator=g)]
        return _nt_xent(model(torch.cat([_augment(xb, g), _augment(xb, g)])), n, temperature)

    return fit_and_diagnose(path, model, opt, loss_of, steps)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_temperature_of_5_is_named_not_the_lr(tmp_path, seed):
    findings = _simclr(tmp_path / "t5.h5", seed, 5.0)
    flat = next((f for f in findings if f.symptom == "no_progress"), None)
    assert flat is not None, [(f.symptom, f.title) for f in findings]
    assert flat.causes[0].id == "loss_setup", [(c.id, c.confidence) for c in flat.causes]
    assert "ln(127)" in flat.causes[0].why            # 2 x 64 views: each row against the 127 others
    assert flat.fixes[0].id == "contrastive_temperature"
    assert all(f.id != "raise_lr" for f in flat.fixes)
    assert "temperature at 0.1" in flat.confirm


@pytest.mark.parametrize("seed", (0, 1))
def test_the_usual_temperature_trains_without_a_warning(tmp_path, seed):
    findings = _simclr(tmp_path / "t01.h5", seed, 0.1)
    assert not [f for f in findings if f.severity in ("warning", "error")], [(f.symptom, f.title) for f in findings]
