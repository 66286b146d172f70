"""Inside rec.begin_forward(batch) ... rec.end_forward() (what the Lightning integration does for
each training batch), calls of the watched model belong to that batch. A manual-optimisation GAN
calls its generator again after the generator's optimizer stepped: that call took the next step's
capture, and from step 1 on the input statistics were the latent noise, not the image batch, so
images left in [0, 16] went unseen (trial 14)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainspect.analysis import open_run
from trainspect.recorder import Recorder


class Gan(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
        self.discriminator = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, z):
        return self.generator(z)


@pytest.mark.parametrize("seed", (0, 1))
def test_the_marked_batch_is_the_steps_input_whatever_the_model_is_called_with(tmp_path, seed):
    torch.manual_seed(seed)
    model = Gan()
    opt_g = torch.optim.Adam(model.generator.parameters(), 2e-4)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), 2e-4)
    bce = nn.functional.binary_cross_entropy_with_logits
    with Recorder(tmp_path / "gan.h5") as rec:
        rec.watch(model, opt_g)
        for _ in range(30):
            imgs = 8.0 + 4.0 * torch.randn(32, 8)          # unnormalised "images": mean 8
            rec.begin_forward(imgs)
            z = torch.randn(32, 4)
            g_loss = bce(model.discriminator(model(z)), torch.ones(32, 1))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            d_loss = bce(model.discriminator(imgs), torch.ones(32, 1)) + \
                bce(model.discriminator(model(z).detach()), torch.zeros(32, 1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            rec.end_forward()
            rec.log({"d_loss": d_loss.item(), "g_loss": g_loss.item()})
    with open_run(tmp_path / "gan.h5") as run:
        means = run.scalar("sys/input_mean").values
    assert len(means) >= 25 and np.all(np.abs(means - 8.0) < 2.0), means
