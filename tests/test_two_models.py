"""Two networks with two optimizers in one process (a GAN): a Recorder each, as the README says;
a second watch() on one Recorder warns with that advice and changes nothing."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

STEPS = 12


def gan(seed):
    torch.manual_seed(seed)
    net_g = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net_d = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.LeakyReLU(0.2), torch.nn.Linear(6, 1))
    return net_g, net_d, torch.optim.Adam(net_g.parameters(), 1e-3), torch.optim.Adam(net_d.parameters(), 1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_gan_records_each_network_in_its_own_file(tmp_path, seed):
    net_g, net_d, opt_g, opt_d = gan(seed)
    gen = torch.Generator().manual_seed(seed)
    ref = {"g": [], "d": [], "loss_g": [], "loss_d": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "gan-G.h5") as rec_g, Recorder(tmp_path / "gan-D.h5") as rec_d:
            rec_g.watch(net_g, opt_g)
            rec_d.watch(net_d, opt_d)
            rec_g.watch(net_d, opt_d)          # the mistake the warning explains
            for i in range(STEPS):
                z, real = torch.randn(8, 4, generator=gen), torch.randn(8, 2, generator=gen) + 3
                loss_d = F.softplus(-net_d(real)).mean() + F.softplus(net_d(net_g(z).detach())).mean()
                opt_d.zero_grad()
                loss_d.backward()
                ref["d"].append([torch.linalg.vector_norm(p.grad).item() for p in net_d.parameters()])
                opt_d.step()
                loss_g = F.softplus(-net_d(net_g(z))).mean()
                opt_g.zero_grad()
                loss_g.backward()
                ref["g"].append([torch.linalg.vector_norm(p.grad).item() for p in net_g.parameters()])
                opt_g.step()
                rec_d.log({"loss": loss_d}, step=i)   # the README's recipe
                rec_g.log({"loss": loss_g}, step=i)
                ref["loss_d"].append(loss_d.item())
                ref["loss_g"].append(loss_g.item())
    advice = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert len(advice) == 1 and "Recorder of its own" in advice[0], advice
    for name, net, key in (("gan-G.h5", net_g, "g"), ("gan-D.h5", net_d, "d")):
        with open_run(tmp_path / name) as run:
            grads = run.layer_stat("grad_norm")
            assert grads.layers == [n for n, _ in net.named_parameters()]
            assert grads.steps.tolist() == list(range(STEPS))
            np.testing.assert_allclose(grads.values, ref[key], rtol=1e-5)
            loss = run.scalar("loss")
            assert loss.steps.tolist() == list(range(STEPS))
            np.testing.assert_allclose(loss.values, ref[f"loss_{key}"], rtol=1e-6)
            assert run.status().state == "finished"
