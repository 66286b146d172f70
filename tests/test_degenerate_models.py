"""A model with zero-element layers (Linear(4, 0) feeding Linear(0, 2)): the loss is constant and
no gradient flows. Recorded, diagnosed and reported like any run: the advisor names the real
problem and stays quiet on the console, and an empty weight is not an "all-zero matrix"."""
from __future__ import annotations

import warnings

import pytest
import torch

from trainspect.analysis import diagnose, open_run
from trainspect.app.report import export_report
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_element_layers_are_diagnosed_quietly(tmp_path, seed):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # torch: "Initializing zero-element tensors is a no-op"
        model = torch.nn.Sequential(torch.nn.Linear(4, 0), torch.nn.Linear(0, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "empty.h5"
    with Recorder(path, stats_every=10) as rec:
        rec.watch(model, opt)
        for _ in range(60):
            loss = model(torch.randn(8, 4)).pow(2).mean() + 1.0
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss})
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # numpy's all-NaN warnings included
        with open_run(path) as run:
            findings = diagnose(run)
        export_report([str(path)], tmp_path / "report.html")
    symptoms = {f.symptom for f in findings}
    assert "frozen_layers" in symptoms               # no gradient reaches any parameter
    assert "symmetric_weights" not in symptoms       # a weight without elements is not "all zero"
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")
