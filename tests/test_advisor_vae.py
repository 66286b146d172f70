"""pytorch/examples' VAE: a loss summed over the batch, trained with Adam, and a log-variance
head with no activation after it. Neither is a problem: Adam's updates do not grow with the
loss scale, and the log-variance is negative by nature. The advisor said "exploding gradients,
reduce the LR 10x" and "100 % dead units behind F.relu" in fc22, under a title whose figure
was another layer's, with evidence reading "nan% of outputs <= 0 ... or 101% outputs"."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect import Recorder
from trainspect.analysis import diagnose, open_run


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def train_vae(path, seed, optimizer="adam", steps=60):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    templates = (torch.rand(10, 784, generator=g) > 0.7).float()
    data = (0.6 * templates[torch.randint(0, 10, (steps * 64,), generator=g)]
            + 0.4 * torch.rand(steps * 64, 784, generator=g)).clamp(0, 1)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for i in range(steps):
            x = data[i * 64:(i + 1) * 64]
            recon, mu, logvar = model(x)
            loss = (F.binary_cross_entropy(recon, x, reduction="sum")
                    - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})


@pytest.mark.parametrize("seed", [0, 1])
def test_a_summed_loss_under_adam_and_a_log_variance_head_are_no_findings(tmp_path, seed):
    train_vae(tmp_path / "vae.h5", seed)
    with open_run(tmp_path / "vae.h5") as run:
        logvar_dead = run.layer_stat("act_dead_frac")
        findings = diagnose(run)
    assert logvar_dead.values[-1, list(logvar_dead.layers).index("fc22")] > 0.99   # the case in point
    assert "exploding_gradients" not in {f.symptom for f in findings}
    for f in findings:
        assert "fc22" not in f.layers, f
        for e in f.evidence:
            assert "nan%" not in e.text and "101%" not in e.text, e.text
