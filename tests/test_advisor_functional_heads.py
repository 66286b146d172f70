"""Parallel heads in a model written with F.relu are not judged as layers a ReLU follows.

pytorch/examples' VAE registers its decoder after the mu/logvar heads fc21/fc22, so fc22 was not
the last Linear and read as "85% of fc22 never fire: dead units behind F.relu?" while its negative
outputs are a posterior variance below 1 (trial 15, F6). A hidden layer with dead units behind its
F.relu is still found in the same model.
"""
from __future__ import annotations

import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.functional_acts import functional_candidates
from trainspect.recorder import Recorder


def test_sibling_heads_are_not_pre_activations():
    # VAE: fc1 -> (fc21, fc22) -> reparameterise -> fc3 -> fc4
    vae = ["fc1", "fc21", "fc22", "fc3", "fc4"]
    shapes = {"fc1": (400, 64), "fc21": (20, 400), "fc22": (20, 400), "fc3": (400, 20), "fc4": (64, 400)}
    assert functional_candidates(["Linear"] * 5, vae, shapes) == [0, 3]
    # actor-critic: affine1 -> F.relu -> (action_head, value_head)
    ac = ["affine1", "action_head", "value_head"]
    assert functional_candidates(["Linear"] * 3, ac, {"affine1": (128, 4), "action_head": (2, 128),
                                                      "value_head": (1, 128)}) == [0]
    # a plain MLP (square hidden layers too): every hidden layer feeds its F.relu
    mlp = ["fc1", "fc2", "fc3", "fc4"]
    square = {"fc1": (64, 20), "fc2": (64, 64), "fc3": (64, 64), "fc4": (3, 64)}
    assert functional_candidates(["Linear"] * 4, mlp, square) == [0, 1, 2]
    assert functional_candidates(["Linear"] * 5, vae) == [0, 1, 2, 3]     # no shapes: as before
    # two depthwise convs in a row (weights (C, 1, k, k)) are a chain, not heads
    dw = ["dw1", "dw2", "head"]
    assert functional_candidates(["Conv2d"] * 3, dw, {"dw1": (32, 1, 3, 3), "dw2": (32, 1, 3, 3),
                                                      "head": (10, 32, 1, 1)}) == [0, 1]


def _vae(torch, dead_logvar: bool, dead_hidden: bool):
    F = torch.nn.functional

    class VAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(64, 128)
            self.fc21, self.fc22 = torch.nn.Linear(128, 16), torch.nn.Linear(128, 16)
            self.fc3, self.fc4 = torch.nn.Linear(16, 128), torch.nn.Linear(128, 64)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

    model = VAE()
    with torch.no_grad():
        if dead_logvar:    # 14 of 16 posterior variances well below 1: negative log-variances, healthy
            model.fc22.bias[:14] = -30.0
        if dead_hidden:    # 7 in 8 hidden units dead behind their F.relu
            model.fc1.bias[: 112] = -20.0
    return model


def _record(path, seed, **kw):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from tests.scenarios import RECORDER_OPTIONS
    torch.manual_seed(seed)
    X = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    model = _vae(torch, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    with Recorder(path, **RECORDER_OPTIONS) as rec:
        rec.watch(model, opt)
        for step in range(150):
            x = X[torch.randint(0, len(X), (128,), generator=g)]
            recon, mu, logvar = model(x)
            bce = torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss}, step=step)
    with open_run(path) as run:
        return {f.symptom: f for f in diagnose(run)}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_vae_logvar_head_is_not_called_dead_behind_f_relu(tmp_path, seed):
    found = _record(tmp_path / "vae.h5", seed, dead_logvar=True, dead_hidden=False)
    dead = found.get("dead_units")
    assert dead is None or "fc22" not in dead.layers, dead.title


@pytest.mark.parametrize("seed", [0, 1])
def test_dead_hidden_units_behind_f_relu_in_the_same_model_are_still_found(tmp_path, seed):
    found = _record(tmp_path / "vae.h5", seed, dead_logvar=True, dead_hidden=True)
    dead = found.get("dead_units")
    assert dead is not None and dead.layers == ["fc1"], dead and (dead.title, dead.layers)
