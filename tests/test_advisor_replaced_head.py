"""A head replaced after the optimizer was built (``model.fc = nn.Linear(...)`` after
``SGD(model.parameters())``, trial 15 F17): frozen_layers listed the old head's tensors, still
in the optimizer and in no module, as "optimizer.group0.param4, optimizer.group0.param5". It
now says what they are, which is the explanation of the bug."""
from __future__ import annotations

import torch
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

torch.set_num_threads(1)

SAID = "2 tensors of the optimizer belong to no module of the model (a layer replaced after the optimizer was built?)"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.body(x))


def train(path, seed, replace_head, steps=40):
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if replace_head:
        model.fc = nn.Linear(16, 3)       # "a head for our 3 classes", after the optimizer was built
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    with Recorder(path, overwrite=True) as rec:
        rec.watch(model, opt)
        for step in range(steps):
            i = torch.randint(0, 256, (32,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})


def frozen(path):
    return [f for f in diagnose(path) if f.symptom == "frozen_layers"]


def test_the_old_heads_tensors_are_said_to_belong_to_no_module(tmp_path):
    for seed in range(2):
        train(tmp_path / "r.h5", seed, replace_head=True)
        found = frozen(tmp_path / "r.h5")
        assert len(found) == 1, found
        f = found[0]
        assert f.severity == "warning"
        assert f.title.startswith("2 parameter(s) never updated: fc.weight (Linear), fc.bias (Linear)"), f.title
        assert SAID in f.title, f.title
        assert "optimizer.group" not in f.title and not any("optimizer.group" in n for n in f.layers), f
        assert set(f.layers) == {"fc.weight", "fc.bias"}
        assert any("shapes 3x16, 3" in e.text for e in f.evidence), [e.text for e in f.evidence]
        assert f.causes[0].id == "optimizer_setup"


def test_a_head_replaced_before_the_optimizer_is_no_finding(tmp_path):
    train(tmp_path / "r.h5", 0, replace_head=False)
    assert frozen(tmp_path / "r.h5") == []
