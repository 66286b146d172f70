"""One activation module shared between layers (pytorch/examples' super_resolution calls
``self.relu`` after every conv; its 2nd call was 92 % dead, unreported): each later call of
a shared parameter-free module is now a layer of its own (``relu#2``); an unrolled cell stays one
(tests/test_recorder_shared_calls.py has the rest)."""
from __future__ import annotations

import warnings

import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 1)
        self.relu = nn.ReLU()
        self.cell = nn.GRUCell(16, 16)

    def forward(self, x):
        h = self.relu(self.b(self.relu(self.a(x))))
        for _ in range(3):               # a cell unrolled over time: one layer by design
            h = self.cell(h, h)
        return self.c(h)


def test_a_shared_activation_module_gets_a_row_per_call_and_an_unrolled_cell_does_not(tmp_path):
    model = Shared()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "r.h5") as rec:
            rec.watch(model, opt)
            for _ in range(5):
                loss = model(torch.randn(4, 8)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"loss": loss.item()})
    said = [str(w.message) for w in caught if "per forward" in str(w.message)]
    assert not said, said
    with open_run(tmp_path / "r.h5") as run:
        # relu#2 after b, which fed it; the first call keeps its place in model order
        assert run.layer_stat("act_mean").layers == ["a", "b", "relu#2", "c", "relu", "cell"]
