"""The discriminator's statistics come from its own training forward, not the generator's.

In the DCGAN loop (README's two Recorders) netD(fake) for the generator's loss runs right
after optimizerD.step(), in train mode with gradients on: it was taken for the
discriminator's next training forward, so from step 1 on D's input and activation statistics
were those of the fake batch, and D's file got a step more than it trained. A forward while
the step's gradients are still there is now held, and the next forward after zero_grad()
(set_to_none, torch's default) replaces it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

REAL_MEAN = 2.0


def _gan(tmp_path, seed, steps=8, device_path=False):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh())
    D = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    paths = tmp_path / "gan-G.h5", tmp_path / "gan-D.h5"
    with Recorder(paths[0], _device_path=device_path) as rec_g, Recorder(paths[1], _device_path=device_path) as rec_d:
        rec_g.watch(G, opt_g, stats_every=1)
        rec_d.watch(D, opt_d, stats_every=1)
        for i in range(steps):
            real = torch.randn(32, 16) * 0.5 + REAL_MEAN
            D.zero_grad()
            err_real = bce(D(real), torch.ones(32, 1))
            err_real.backward()
            fake = G(torch.randn(32, 8))
            err_fake = bce(D(fake.detach()), torch.zeros(32, 1))
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            err_g = bce(D(fake), torch.ones(32, 1))
            err_g.backward()
            opt_g.step()
            rec_d.log({"loss": err_real + err_fake}, step=i)
            rec_g.log({"loss": err_g}, step=i)
    return paths


@pytest.mark.parametrize("device_path", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_discriminator_inputs_are_its_real_batches(tmp_path, seed, device_path):
    _, d_path = _gan(tmp_path, seed, device_path=device_path)
    with open_run(d_path) as run:
        inputs = run.scalar("sys/input_mean")
        assert inputs.steps.tolist() == list(range(8))
        np.testing.assert_allclose(inputs.values, REAL_MEAN, atol=0.3)   # fakes are near 0 (tanh)
        assert run.status().last_step == 7                                # no step it did not train
        assert run.layer_stat("act_mean").steps.tolist() == list(range(8))
        assert run.scalar("sys/data_wait").steps.tolist() == list(range(1, 8))


def _plain(tmp_path, seed, order, device_path=False):
    """One network, one forward a step, zero_grad in the places loops put it."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    path = tmp_path / f"{order}.h5"
    means = []
    with Recorder(path, _device_path=device_path) as rec:
        rec.watch(model, opt, stats_every=1)
        for _ in range(6):
            x = torch.randn(8, 4) * 3 + float(len(means))
            means.append(float(x.mean()))
            if order == "zero_grad before forward":
                opt.zero_grad()
                loss = model(x).pow(2).mean()
            elif order == "zero_grad after forward":
                loss = model(x).pow(2).mean()
                opt.zero_grad()
            else:   # zero_grad(set_to_none=False): gradients are never None
                opt.zero_grad(set_to_none=False)
                loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    return path, means


@pytest.mark.parametrize("order", ["zero_grad before forward", "zero_grad after forward", "zeros kept"])
@pytest.mark.parametrize("device_path", [False, True])
def test_every_step_of_a_plain_loop_keeps_its_input_statistics(tmp_path, order, device_path):
    path, means = _plain(tmp_path, 0, order, device_path)
    with open_run(path) as run:
        inputs = run.scalar("sys/input_mean")
        assert inputs.steps.tolist() == list(range(6))
        np.testing.assert_allclose(inputs.values, means, rtol=1e-5, atol=1e-6)
        assert run.layer_stat("act_mean").steps.tolist() == list(range(6))
