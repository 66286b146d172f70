"""Layers under torch.nn.utils.parametrizations (spectral_norm in GAN discriminators, weight_norm
in HiFi-GAN and WaveNet vocoders). torch hangs the weight's computation below the layer, so the
layer stopped being a leaf: the "activation statistics" recorded were those of the computed
weights (the parametrization modules' outputs), the layer's own outputs were not recorded, and
the layer's type read ``ParametrizedLinear`` (the advisor looks for Linear outputs by type)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 6


def discriminator(seed):
    torch.manual_seed(seed)
    return nn.Sequential(weight_norm(nn.Linear(8, 32)), nn.LeakyReLU(0.2),
                         spectral_norm(nn.Linear(32, 32)), nn.Tanh(), nn.Linear(32, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_parametrized_layer_records_its_own_output(tmp_path, seed):
    model = discriminator(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    outputs = {0: [], 2: []}          # the layers' outputs, captured at the first forward of each step
    for i, out in outputs.items():
        model[i].register_forward_hook(lambda m, a, y, out=out: out.append(y.detach().clone()))
    data = torch.Generator().manual_seed(seed)
    with Recorder(tmp_path / "d.h5", stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            loss = model(torch.randn(16, 8, generator=data)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": loss})
    run = open_run(tmp_path / "d.h5")
    assert [(m.name, m.type) for m in run.modules] == [
        ("0", "Linear"), ("1", "LeakyReLU"), ("2", "Linear"), ("3", "Tanh"), ("4", "Linear")]
    std = run.layer_stat("act_std")
    assert list(std.steps) == list(range(STEPS))
    for i, out in outputs.items():
        expected = [float(y.std(unbiased=False)) for y in out]
        np.testing.assert_allclose(std.values[:, i], expected, rtol=1e-4)
    # the parameters keep their real names: the optimizer's tensors, found again by name
    assert "0.parametrizations.weight.original0" in run.layer_stat("grad_norm").layers
    assert "2.parametrizations.weight.original" in run.layer_stat("grad_norm").layers
