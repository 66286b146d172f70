"""Weights stored in bfloat16 with no float32 master copy (``model.to(torch.bfloat16)`` and a plain
optimizer) lose every step below half their precision: an AdamW fine-tune at a small LR creeps
while gradients and activations look normal, and the advisor said "no problems found". The
recorder now keeps each parameter's dtype and ``lost_updates`` compares the step with it."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _train(path, seed, dtype, lr, opt="adamw", autocast=False, steps=160):
    torch.manual_seed(seed)
    x = torch.randn(1024, 32)
    y = (x @ torch.randn(32, 10)).argmax(1)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)).to(dtype)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=lr) if opt == "adamw"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    with Recorder(path, overwrite=True, stats_every=10) as rec:
        rec.watch(model, optimizer)
        for _ in range(steps):
            i = torch.randint(0, 1024, (64,))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = nn.functional.cross_entropy(model(x[i].to(dtype)).float(), y[i])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rec.log({"loss": loss.item()})
    return path


def _lost(path):
    return [f for f in diagnose(path) if f.symptom == "lost_updates"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_bfloat16_model_stepped_below_its_precision_is_reported_with_the_float32_fix_first(tmp_path, seed):
    found = _lost(_train(tmp_path / "r.h5", seed, torch.bfloat16, 1e-4))
    assert len(found) == 1
    f = found[0]
    assert f.severity == "warning" and f.facts["dtypes"] == ["bfloat16"]
    assert f.facts["lost_share"] > 0.9
    assert f.causes[0].id == "low_precision_weights"
    assert f.fixes[0].id == "fp32_master_weights" and "autocast" in f.fixes[0].text


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype, lr, autocast", [
    (torch.float32, 1e-4, False),      # the same run in float32: its small steps are kept
    (torch.float32, 1e-4, True),       # mixed precision the usual way: float32 weights under autocast
    (torch.bfloat16, 1e-2, False),     # steps of ~10 % of a weight survive bfloat16's rounding
    (torch.float16, 1e-4, False),      # float16 keeps 11 significant bits: 1e-3 of a weight is kept
])
def test_weights_that_keep_their_steps_are_not_reported(tmp_path, seed, dtype, lr, autocast):
    assert _lost(_train(tmp_path / "r.h5", seed, dtype, lr, autocast=autocast)) == []


def test_sgd_steps_are_judged_from_the_gradient_to_weight_ratio(tmp_path):
    # SGD moves a weight by lr x its gradient (x 1 / (1 - momentum)): tiny at lr 1e-4
    assert _lost(_train(tmp_path / "a.h5", 0, torch.bfloat16, 1e-4, opt="sgd"))
    assert not _lost(_train(tmp_path / "b.h5", 0, torch.bfloat16, 0.5, opt="sgd", steps=60))


def test_the_recorder_keeps_every_parameter_dtype(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2).to(torch.bfloat16))
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with open_run(tmp_path / "r.h5") as run:
        assert run.meta["model"]["param_dtypes"] == {"float32": [0, 1], "bfloat16": [2, 3]}
