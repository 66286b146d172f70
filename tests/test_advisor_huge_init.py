"""A ReLU MLP initialised N(0, 1) (AUTOTRAINER's exploding-gradient case): its untrained outputs
have a std of ~16,000, its loss goes NaN at step 3 under SGD 0.1, and the advisor blamed the LR
(90 %) and guessed a loss summed over the batch; the same net at its default init trains at that
LR. At SGD 1e-3 it ends at a validation loss of 60 (chance: 2.3), which read as "trained well"."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

sklearn = pytest.importorskip("sklearn.datasets")


def _run(path, seed, lr, big_init, epochs=6):
    torch.manual_seed(seed)
    x, y = sklearn.load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    if big_init:
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 1.0)
    return _fit(path, model, torch.optim.SGD(model.parameters(), lr=lr), x, y, epochs)


def _fit(path, model, opt, x, y, epochs):
    """Epochs over the first 1400 digits in batches of 64, the validation loss on the rest after each."""
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(epochs):
            for i in range(0, 1400, 64):
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
            with torch.no_grad():
                rec.log({"val/loss": F.cross_entropy(model(x[1400:]), y[1400:]).item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_huge_before_any_update_blame_the_init(tmp_path, seed):
    found = _run(tmp_path / "r.h5", seed, lr=0.1, big_init=True)
    assert found and all(f.causes[0].id == "bad_init" for f in found), [(f.symptom, f.causes[0].id) for f in found]
    assert all(fix.id != "check_loss_reduction" for f in found for fix in f.fixes)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_default_init_at_the_same_lr_is_not_blamed(tmp_path, seed):
    found = _run(tmp_path / "r.h5", seed, lr=0.1, big_init=False)
    assert all(f.causes[0].id != "bad_init" for f in found)


@pytest.mark.parametrize("seed", [0, 1])
def test_weights_initialised_far_too_small_blame_the_init_not_tanh(tmp_path, seed):
    """Ten tanh layers at N(0, 0.01) (AUTOTRAINER's vanishing-gradient case): "swap tanh for ReLU"
    vanished the same way (9e-12x), and was then told ReLUs die "with a normal update/weight
    ratio (7.6e-08)"; a gain of 0.08 per layer is the cause."""
    torch.manual_seed(seed)
    x, y = sklearn.load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    layers = []
    for _ in range(10):
        layers += [nn.Linear(64, 64), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    found = {f.symptom: f for f in _fit(tmp_path / "r.h5", model, opt, x, y, epochs=4)}
    assert found["vanishing_gradients"].causes[0].id == "bad_init"
    assert all(f.causes[0].id == "bad_init" for f in found.values()), [(f.symptom, f.causes[0].id) for f in found.values()]
