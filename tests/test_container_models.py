"""A watched ModuleDict or ModuleList (a GAN kept as {"g": G, "d": D}) is never called itself, so
the recorder saw no forward pass: a loss logged after the step was labelled one step late and
nothing said why activation statistics were missing. The parts' forwards now label the step,
and the first step warns once, unless the loop marks its steps with begin_forward()."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 8


def gan(seed, as_list):
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
    d = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return nn.ModuleList([g, d]) if as_list else nn.ModuleDict({"g": g, "d": d})


def train(path, seed, as_list, mark):
    model = gan(seed, as_list)
    g, d = (model[0], model[1]) if as_list else (model["g"], model["d"])
    opt_g, opt_d = torch.optim.Adam(g.parameters(), lr=1e-3), torch.optim.Adam(d.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, stats_every=1) as rec:
            rec.watch(model, opt_g)
            for _ in range(STEPS):
                real, z = torch.randn(16, 8, generator=data), torch.randn(16, 4, generator=data)
                if mark:
                    rec.begin_forward(z)
                fake = g(z)
                d_loss = d(fake.detach()).mean() - d(real).mean()
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                g_loss = -d(fake).mean()
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
                if mark:
                    rec.end_forward()
                rec.log({"loss/g": g_loss, "loss/d": d_loss})
    return open_run(path), [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_list", [False, True], ids=["ModuleDict", "ModuleList"])
def test_a_container_model_labels_its_losses_and_says_what_is_missing(tmp_path, seed, as_list):
    run, caught = train(tmp_path / "gan.h5", seed, as_list, mark=False)
    assert list(run.scalar("loss/g").steps) == list(range(STEPS))    # old code: 1..8
    assert list(run.layer_stat("grad_norm").steps) == list(range(STEPS))
    said = [m for m in caught if "never called itself" in m]
    assert len(said) == 1 and "begin_forward" in said[0], caught


@pytest.mark.parametrize("seed", [0, 1])
def test_a_container_model_marked_with_begin_forward_gets_activations_and_no_warning(tmp_path, seed):
    run, caught = train(tmp_path / "gan.h5", seed, as_list=False, mark=True)
    assert list(run.scalar("loss/g").steps) == list(range(STEPS))
    assert list(run.layer_stat("act_std").steps) == list(range(STEPS))
    assert not [m for m in caught if "never called itself" in m], caught


class AdapterLinear(nn.Module):
    """PEFT's LoRA layer in miniature: unused adapter slots are empty ModuleDicts and a
    ParameterDict holds a parameter the parent's forward uses."""

    def __init__(self):
        super().__init__()
        self.base_layer = nn.Linear(8, 8)
        self.lora_magnitude_vector = nn.ModuleDict()
        self.lora_embedding_A = nn.ParameterDict({"default": nn.Parameter(torch.zeros(8))})

    def forward(self, x):
        return self.base_layer(x) + self.lora_embedding_A["default"]


def test_containers_inside_a_model_are_no_activation_rows(tmp_path):
    """They never run a forward: each was a row of NaN activation statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(AdapterLinear(), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "adapters.h5", stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            model(torch.randn(4, 8)).sum().backward()
            opt.step()
            opt.zero_grad()
    run = open_run(tmp_path / "adapters.h5")
    assert [m.name for m in run.modules] == ["0.base_layer", "1", "2"]
    acts = run.layer_stat("act_std")
    assert not np.isnan(acts.values).all(axis=0).any()
    assert "0.lora_embedding_A.default" in run.layer_stat("grad_norm").layers
