"""An optimizer built on a copy of the model (DeepDiagnosis' "unchanged weight"): the model's
gradients are never cleared by that optimizer's zero_grad(), and fix 1 read "call zero_grad()",
which the script does. The recorder knows the optimizer holds none of the model's parameters."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1])
def test_an_optimizer_on_a_copy_of_the_model_is_named(tmp_path, seed):
    torch.manual_seed(seed)
    x, y = torch.randn(512, 16), torch.randint(0, 4, (512,))
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(copy.deepcopy(model).parameters(), lr=1e-3)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for step in range(120):
            i = torch.randint(0, 512, (32,))
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    found = diagnose(tmp_path / "r.h5")
    assert found
    first = found[0]
    assert first.causes[0].id == "optimizer_setup" and first.fixes[0].id == "optimizer_on_model", first.fix_texts
    assert all(f.id != "zero_grad" for g in found for f in g.fixes)
    assert "copy of the model" in first.fixes[0].text


class WithAdapter(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base, self.adapter = base, nn.Linear(16, 4)

    def forward(self, x):
        return self.base(x) + self.adapter(x)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_optimizer_built_before_the_adapters_names_the_order(tmp_path, seed):
    """peft's get_peft_model() after the optimizer: it holds the base weights peft froze and none
    of the adapters; "made from a copy of the model?" sent the user the wrong way (trial 14)."""
    torch.manual_seed(seed)
    x, y = torch.randn(512, 16), torch.randint(0, 4, (512,))
    base = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(base.parameters(), lr=1e-3)          # the bug: before the adapter exists
    base.requires_grad_(False)
    model = WithAdapter(base)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for step in range(120):
            i = torch.randint(0, 512, (32,))
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    fixes = [f for g in diagnose(tmp_path / "r.h5") for f in g.fixes if f.id == "optimizer_on_model"]
    assert fixes and "get_peft_model" in fixes[0].text and "copy of the model" not in fixes[0].text
