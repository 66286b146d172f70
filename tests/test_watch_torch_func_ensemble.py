"""torch.func's model-ensembling tutorial (stack_module_state + vmap(functional_call)), trained
(trial 15 F8). Watching its base model, moved to the meta device, made an instrument fail
("Cannot copy out of meta tensor") and switched every instrument off; watching it on real
weights gave "4 parameter(s) have no gradient ... frozen by torch.no_grad()?" and "model.forward(x)
instead of model(x)?". The recorder now says once that a meta module holds no data, and the
advisor says plainly that the optimizer trains none of the watched module's parameters."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.coverage import coverage
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

torch.set_num_threads(1)

WRONG = ("instrument failed", "model.forward(x)", "frozen by torch.no_grad()")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def train_ensemble(path, seed, target, steps=40):
    """The tutorial's ensemble of 3 MLPs, one Adam over the stacked parameters; ``target``:
    the module handed to watch() ("meta": the tutorial's base model, "base": the same on real
    weights). Returns the texts of the RecorderWarnings."""
    torch.manual_seed(seed)
    models = [MLP() for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0])
    if target == "meta":
        base = base.to("meta")

    def fmodel(p, b, x):
        return functional_call(base, (p, b), (x,))

    opt = torch.optim.Adam(params.values(), lr=1e-2)
    x, y = torch.randn(256, 16), torch.randint(0, 4, (256,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, overwrite=True) as rec:
            rec.watch(base, opt)
            for _ in range(steps):
                i = torch.randint(0, 256, (32,))
                logits = vmap(fmodel, in_dims=(0, 0, None))(params, buffers, x[i])
                loss = F.cross_entropy(logits.reshape(-1, 4), y[i].repeat(3))
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


def activations_gap(path):
    return next(g.how for g in coverage(path).gaps if g.instrument == "activations")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_meta_device_base_model_is_said_to_hold_no_data_once(tmp_path, seed):
    said = train_ensemble(tmp_path / "m.h5", seed, "meta")
    assert len(said) == 1, said
    assert "meta device" in said[0] and "holds no data" in said[0] and "vmap(functional_call)" in said[0]
    assert not any(w in said[0] for w in WRONG), said
    with open_run(tmp_path / "m.h5") as run:
        assert "sys/instruments_off" not in run.scalar_names()
        # what the optimizer trains (the stacked tensors) is still recorded, by position
        grads = run.layer_stat("grad_norm")
        assert grads.layers == [f"optimizer.group0.param{i}" for i in range(4)]
        assert len(grads.steps) == 40 and (grads.values > 0).all()
    assert [f.symptom for f in diagnose(tmp_path / "m.h5") if f.symptom == "frozen_layers"] == []
    how = activations_gap(tmp_path / "m.h5")
    assert "meta device" in how and "model.forward(x)" not in how


@pytest.mark.parametrize("seed", [0, 1])
def test_a_base_model_on_real_weights_is_said_not_to_be_trained(tmp_path, seed):
    said = train_ensemble(tmp_path / "b.h5", seed, "base")
    assert len(said) == 1, said
    assert "the optimizer holds none of its parameters" in said[0], said
    assert not any(w in said[0] for w in WRONG), said
    found = diagnose(tmp_path / "b.h5")
    assert [f for f in found if f.symptom == "frozen_layers"] == [], [f.title for f in found]
    how = activations_gap(tmp_path / "b.h5")
    assert "the optimizer holds none of its parameters" in how and "model.forward(x)" not in how, how


def test_an_optimizer_on_a_copy_of_a_called_model_is_still_a_warning(tmp_path):
    # the model is called and gets gradients: its optimizer (on a copy) is the bug, as before
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(copy.deepcopy(model).parameters(), lr=1e-3)
    x, y = torch.randn(256, 16), torch.randint(0, 4, (256,))
    with Recorder(tmp_path / "c.h5") as rec:
        rec.watch(model, opt)
        for _ in range(40):
            i = torch.randint(0, 256, (32,))
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    frozen = [f for f in diagnose(tmp_path / "c.h5") if f.symptom == "frozen_layers"]
    assert len(frozen) == 1 and frozen[0].severity == "warning" and frozen[0].facts["no_update"]
