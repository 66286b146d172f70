"""The advisor on small training scripts written the way tutorials write them (sweep of
2026-12-06): a network whose every ReLU is dead was reported as "LR too low" (its dead units
were taken for one-sample batches), and dead units from unscaled inputs as "LR too high"."""
from __future__ import annotations

import pytest
import torch

from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder


def _data(seed, n=512, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=gen)
    y = (x @ torch.randn(20, generator=gen) > 0).long() + 2 * (x[:, 0] > 0.5).long()
    return x * scale + (scale if scale != 1.0 else 0.0), y


def _train(path, seed, *, bias=None, scale=1.0, lr=0.01, steps=150):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 4))
    if bias is not None:
        for layer in (model[0], model[2]):
            torch.nn.init.constant_(layer.bias, bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, y = _data(seed, scale=scale)
    with Recorder(path) as rec:
        rec.watch(model, opt, stats_every=5)
        for step in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(path) as run:
        return diagnose(run)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_relu_dead_from_a_bad_bias_is_named(tmp_path, seed):
    findings = _train(tmp_path / "dead.h5", seed, bias=-10.0)
    top = findings[0]
    assert top.symptom == "dead_units" and top.severity == "error"
    assert top.causes[0].id == "bad_init"


@pytest.mark.parametrize("seed", [0, 1])
def test_units_killed_by_unscaled_inputs_blame_the_inputs(tmp_path, seed):
    findings = _train(tmp_path / "raw.h5", seed, scale=300.0)
    symptoms = [f.symptom for f in findings]
    assert "unnormalized_inputs" in symptoms
    for f in findings:
        if f.symptom == "dead_units":
            assert f.causes[0].id == "input_scaling", f.causes


@pytest.mark.parametrize("seed", [0, 1])
def test_a_layer_left_out_of_the_optimizer_is_not_told_to_call_zero_grad(tmp_path, seed):
    """Its gradients are never cleared (the optimizer's zero_grad() does not know them): the
    global norm grows, and 'call optimizer.zero_grad()' came first for a script that does."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    params = [p for i in (0, 4) for p in model[i].parameters()]       # model[2] forgotten
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = _data(seed)
    path = tmp_path / "left_out.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for step in range(150):
            idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(path) as run:
        frozen = next(f for f in diagnose(run) if f.symptom == "frozen_layers")
    assert frozen.causes[0].id == "optimizer_setup"
    assert frozen.fixes[0].id != "zero_grad" and "zero_grad() once per step" not in frozen.fixes[0].text


@pytest.mark.parametrize("seed", [0, 1])
def test_a_blow_up_from_the_first_step_is_not_said_to_follow_a_calm_start(tmp_path, seed):
    findings = _train(tmp_path / "hot.h5", seed, lr=10.0, steps=60)
    assert findings[0].causes[0].id == "lr_too_high"
    assert {"nan_inf", "divergence", "exploding_gradients"} & {f.symptom for f in findings}
    for f in findings:
        for cause in f.causes:
            assert "calm start" not in cause.why, (f.symptom, cause.why)
