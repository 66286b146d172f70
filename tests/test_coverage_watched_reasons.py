"""``diagnose``'s "not checked" for a watched run without activation statistics told the user
who had called ``rec.watch()`` to "record with trainspect (rec.watch(model, optimizer))": the
forward went round the hooks (``model.forward(x)``, forward-forward layers' ``self.forward``) or
ran in eval mode. It now says which."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.analysis.advisor.coverage import coverage
from trainspect.recorder import Recorder


def _train(path, seed, how):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    with pytest.warns(Warning), Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        if how == "eval":
            model.eval()
        for _ in range(10):
            out = model.forward(x) if how == "forward" else model(x)
            loss = ((out - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
    with open_run(path) as run:
        return {g.instrument: g.text for g in coverage(run).gaps}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_forward_round_the_hooks_is_named(tmp_path, seed):
    gaps = _train(tmp_path / "f.h5", seed, "forward")
    assert "model(x)" in gaps["activations"] and "rec.watch(" not in gaps["activations"]


@pytest.mark.parametrize("seed", [0, 1])
def test_training_in_eval_mode_is_named(tmp_path, seed):
    gaps = _train(tmp_path / "e.h5", seed, "eval")
    assert "model.train()" in gaps["activations"] and "rec.watch(" not in gaps["activations"]
