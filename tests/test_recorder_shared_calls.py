"""A parameter-free module called several times per forward is several layers (F12):
pytorch/examples' super_resolution applies its one ``self.relu`` after each conv, and the 2nd
call, 92 % dead, went unseen because only the first call was measured. Each later call now has
its own ``acts`` row, ``relu#2``, ``relu#3``, after the layer that fed it, in every step."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.records import activations

torch.set_num_threads(1)


class SuperResolution(nn.Module):
    """super_resolution's shape: the ReLU is registered first and used after three convs."""

    def __init__(self, dead_bias=-20.0):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 4, 3, padding=1)
        self.conv4 = nn.Conv2d(4, 1, 3, padding=1)
        with torch.no_grad():
            self.conv2.bias.fill_(dead_bias)      # the 2nd call of relu is (nearly) all dead

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.conv4(x)


def train(path, seed, model, steps=6, device_path=False, **kw):
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, _device_path=device_path, **kw) as rec:
            rec.watch(model, opt)
            for _ in range(steps):
                loss = model(torch.randn(4, 1, 8, 8)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    return [str(w.message) for w in caught]


def dead_share(path):
    with open_run(path) as run:
        st = run.layer_stat("act_frac_nonpos")
        return st.layers, st.steps, st.values


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_call_of_a_shared_relu_is_its_own_layer(tmp_path, seed, device_path):
    torch.manual_seed(seed)
    said = train(tmp_path / "r.h5", seed, SuperResolution(), device_path=device_path)
    assert not [s for s in said if "more than once per forward" in s], said
    layers, steps, dead = dead_share(tmp_path / "r.h5")
    # each later call right after the conv that fed it; names are those of every step
    assert layers == ["relu", "conv1", "conv2", "relu#2", "conv3", "relu#3", "conv4"]
    assert steps.tolist() == list(range(6))
    col = {name: dead[:, n] for n, name in enumerate(layers)}
    assert (col["relu#2"] > 0.9).all()                 # the dead call is seen, at every step
    assert (col["relu"] < 0.8).all()                   # ... and is not the first call
    np.testing.assert_allclose(col["relu#2"], col["conv2"], atol=1e-6)   # a ReLU's zeros are its input's <= 0
    np.testing.assert_allclose(col["relu#3"], col["conv3"], atol=1e-6)


def test_a_shared_relu_is_judged_dead_at_its_second_call(tmp_path):
    from trainspect.analysis import diagnose

    hits = 0
    for seed in range(3):
        train(tmp_path / f"r{seed}.h5", seed, SuperResolution(), steps=30)
        found = [f for f in diagnose(tmp_path / f"r{seed}.h5") if f.symptom == "dead_units"]
        hits += any("relu#2" in f.layers for f in found)
    assert hits >= 2


def test_calls_beyond_the_cap_are_said_unmeasured_once(tmp_path, monkeypatch):
    monkeypatch.setattr(activations, "MAX_CALLS", 2)
    said = train(tmp_path / "r.h5", 0, SuperResolution())
    layers, _, _ = dead_share(tmp_path / "r.h5")
    assert layers == ["relu", "conv1", "conv2", "relu#2", "conv3", "conv4"]
    beyond = [s for s in said if "calls beyond the rows are not measured" in s]
    assert len(beyond) == 1 and "'relu' (ReLU, 3 calls, 2 rows)" in beyond[0], said


def test_a_model_without_shared_modules_keeps_its_rows(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for _ in range(3):
            loss = model(torch.randn(2, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "r.h5") as run:
        assert run.layer_stat("act_mean").layers == ["0", "1", "2"]


def test_layout_started_before_any_forward_still_says_first_call_only(tmp_path):
    # flush() right after watch() makes the file readable before a forward showed the calls:
    # the shared module keeps one row and the run says so once.
    model = SuperResolution()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "r.h5") as rec:
            rec.watch(model, opt)
            rec.flush()
            with open_run(tmp_path / "r.h5") as run:     # readable at once
                assert run.layer_stat("act_mean").layers == ["relu", "conv1", "conv2", "conv3", "conv4"]
            for _ in range(3):
                loss = model(torch.randn(4, 1, 8, 8)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    said = [str(w.message) for w in caught if "several times per forward" in str(w.message)]
    assert len(said) == 1 and "'relu' (ReLU, 3 calls, 1 row)" in said[0], said
    layers, steps, _ = dead_share(tmp_path / "r.h5")
    assert layers == ["relu", "conv1", "conv2", "conv3", "conv4"] and steps.tolist() == [0, 1, 2]


def test_a_forward_that_calls_the_module_fewer_times_leaves_its_row_empty(tmp_path):
    class Branchy(SuperResolution):
        short = False

        def forward(self, x):
            x = self.relu(self.conv1(x))
            if not self.short:
                x = self.relu(self.conv2(x))
            x = self.relu(self.conv3(x))
            return self.conv4(x)

    model = Branchy(dead_bias=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for step in range(4):
            model.short = step == 2
            loss = model(torch.randn(4, 1, 8, 8)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    layers, steps, dead = dead_share(tmp_path / "r.h5")
    assert layers == ["relu", "conv1", "conv2", "relu#2", "conv3", "relu#3", "conv4"]
    # step 2 called relu twice: the 2nd call is its #2 (after conv3), #3 has nothing
    assert np.isnan(dead[2, layers.index("relu#3")]) and np.isfinite(dead[2, layers.index("relu#2")])
    assert np.isfinite(dead[[0, 1, 3]][:, layers.index("relu#3")]).all()
