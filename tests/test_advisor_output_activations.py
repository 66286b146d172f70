"""An activation after the model's last layer (peers' benchmark cases, DeepDiagnosis' "out of
range" and DeepFD's "wrong activation"): judged as the output it is, not as a hidden layer.

- A ReLU after the last Linear of a classifier died late in the run: the dead-unit rule judged
  the last half of the *records*, which the recorder takes every step for the first 100 steps,
  so "late" was mostly steps 46-100 ("no problems found" at 49 % accuracy).
- A Sigmoid on a regression's output saturated: the fix was "replace sigmoid/tanh in hidden
  layers with ReLU" for a model whose hidden layers are ReLUs; removing the Sigmoid is the fix.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

sklearn = pytest.importorskip("sklearn.datasets")


def _fit(path, model, opt, x, y, loss_fn, epochs, batch, seed):
    torch.manual_seed(seed)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    return {f.symptom: f for f in diagnose(path)}


def _digits():
    x, y = sklearn.load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("seed", [0, 2])
def test_a_relu_after_the_last_layer_is_found_when_it_dies_late(tmp_path, seed):
    torch.manual_seed(seed)
    x, y = _digits()
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10), nn.ReLU())
    found = _fit(tmp_path / "r.h5", model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, F.cross_entropy,
                 epochs=20, batch=64, seed=seed)
    f = found["dead_units"]
    assert f.layers == ["3"] and f.causes[0].id == "activation_choice"
    assert f.fixes[0].id == "output_activation" and "remove the ReLU on the output" in f.fixes[0].text
    assert all("LeakyReLU" not in t for t in f.fix_texts)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_saturated_sigmoid_on_a_regression_output_is_removed_not_swapped(tmp_path, seed):
    torch.manual_seed(seed)
    x, y = sklearn.make_regression(n_samples=1200, n_features=13, noise=5.0, random_state=seed)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor((y - y.min()) / (y.max() - y.min()) * 300, dtype=torch.float32)
    model = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    found = _fit(tmp_path / "r.h5", model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y,
                 lambda o, t: F.mse_loss(o.squeeze(1), t), epochs=12, batch=32, seed=seed)
    f = found["saturated_activations"]
    assert f.layers == ["5"] and f.causes[0].id == "activation_choice"
    assert f.fixes[0].id == "output_activation" and "Sigmoid" in f.fixes[0].text
    for g in found.values():
        assert all("hidden layers" not in t for t in g.fix_texts), (g.symptom, g.fix_texts)


def test_the_late_half_is_taken_by_step_not_by_record():
    from trainspect.analysis.advisor.activation_rules import _late
    steps = np.r_[np.arange(101), np.arange(150, 600, 50)]      # the recorder's schedule: dense, then every 50
    values = np.where(steps >= 300, 1.0, 0.0)[:, None]
    assert _late(values, 0.5, steps).min() == 1.0 and len(_late(values, 0.5, steps)) == 6
    assert np.median(_late(values, 0.5)) == 0.0                   # by record: mostly steps 46-100
