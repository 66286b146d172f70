"""The nan_inf finding's words (trial 14): a NaN input batch poisons the weights for good, and the
finding said "steps 150-160" (read as "it recovered") and "first in 0.weight" (the input was
non-finite first)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, *, bad_input: bool, steps=80, at=40):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for step in range(steps):
            x = torch.randn(32, 8, generator=g)
            if bad_input and step == at:
                x[3, 2] = float("nan")
            loss = F.cross_entropy(model(x), (x[:, 0] > 0).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            shown = loss.item() if bad_input or step != at else math.nan   # one NaN logged, the model fine
            rec.log({"train/loss": shown})
    return diagnose(path)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_nan_input_batch_is_named_and_the_span_runs_to_the_end(tmp_path, seed):
    f = next(f for f in _run(tmp_path / "run.h5", seed, bad_input=True) if f.symptom == "nan_inf")
    assert f.title.startswith("a non-finite input batch at step 40")
    assert f.title.endswith("and to the end of the run")
    assert (f.first_step, f.last_step) == (40, 79)


def test_a_single_non_finite_value_keeps_its_own_span(tmp_path):
    f = next(f for f in _run(tmp_path / "run.h5", 0, bad_input=False) if f.symptom == "nan_inf")
    assert "input batch" not in f.title and "end of the run" not in f.title
    assert f.first_step == 40 and f.last_step == 40
