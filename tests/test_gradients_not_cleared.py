"""A missing zero_grad() is measured, not guessed: sys/grad_carried and the advisor's
``gradients_not_cleared``. Legitimate patterns that keep a gradient across backward passes
(accumulation, a GAN's generator pass through the discriminator, zero_grad(set_to_none=False),
a hand-written update that zeroes in place) must not read as one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainspect import Recorder
from trainspect.analysis import diagnose
from trainspect.analysis.run import Run
from trainspect.recorder.format import SYS_GRAD_CARRIED

SEEDS = (0, 1, 2)


def _net():
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _batch(g):
    x = torch.randn(32, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _carried(path):
    with Run(path) as run:
        if SYS_GRAD_CARRIED not in run.scalar_names():
            return None
        s = run.scalar(SYS_GRAD_CARRIED)
        return s.steps, s.values


def train(path, seed, *, clear="zero_grad", optimizer="sgd", steps=60, accumulate=1, device_path=False):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = _net()
    opt = None
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Recorder(path, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for i in range(steps * accumulate):
            x, y = _batch(g)
            if clear == "zero_grad" and opt is not None and i % accumulate == 0:
                opt.zero_grad()
            if clear == "keep_tensors":
                opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if opt is not None:
                if (i + 1) % accumulate == 0:
                    opt.step()
            else:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= 0.05 * p.grad
                        if clear == "zero_":
                            p.grad.zero_()
                        elif clear == "none":
                            p.grad = None
            rec.log({"train/loss": loss})
    return path


def _symptoms(path):
    return [f.symptom for f in diagnose(path)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_missing_zero_grad_is_an_error_named_first(tmp_path, seed, optimizer):
    path = train(tmp_path / "run.h5", seed, clear="never", optimizer=optimizer)
    steps, values = _carried(path)
    # the first update's gradient was fresh (None before it: no row), every later one carried
    assert steps.tolist() == list(range(1, 60)) and np.all(values == 1)
    findings = diagnose(path)
    top = findings[0]
    assert top.symptom == "gradients_not_cleared" and top.severity == "error"
    assert top.fixes[0].id == "zero_grad" and "optimizer.zero_grad()" in top.fixes[0].text
    for f in findings[1:]:       # whatever else it caused is blamed on it, not on the LR
        if f.causes and f.symptom in ("divergence", "loss_oscillation", "exploding_gradients", "no_progress"):
            assert f.causes[0].id == "optimizer_setup"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_hand_written_update_without_clearing_is_named_with_its_own_fix(tmp_path, seed):
    path = train(tmp_path / "run.h5", seed, clear="never", optimizer=None)
    top = diagnose(path)[0]
    assert top.symptom == "gradients_not_cleared"
    assert "p.grad = None" in top.fixes[0].text and "optimizer" not in top.fixes[0].text


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("clear", ["zero_", "none"])
def test_a_hand_written_update_that_clears_is_healthy_and_its_gradients_are_recorded(tmp_path, seed, clear):
    path = train(tmp_path / "run.h5", seed, clear=clear, optimizer=None)
    steps, values = _carried(path)
    assert len(values) == (59 if clear == "zero_" else 0) and not values.any()
    symptoms = _symptoms(path)
    assert "gradients_not_cleared" not in symptoms
    # The norms come from the end of backward(), not from log() after the update zeroed them.
    with Run(path) as run:
        g = run.layer_stat("grad_norm")
        assert np.all(np.asarray(g.values)[1:] > 0)
    assert "frozen_layers" not in symptoms


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("clear,accumulate", [("zero_grad", 1), ("zero_grad", 4), ("keep_tensors", 1)])
@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
def test_cleared_gradients_read_as_cleared(tmp_path, seed, clear, accumulate, device_path):
    path = train(tmp_path / "run.h5", seed, clear=clear, accumulate=accumulate, steps=40, device_path=device_path)
    steps, values = _carried(path)
    # a reset to None writes no row; zero_grad(set_to_none=False) a 0 for every update
    assert len(steps) == (39 if clear == "keep_tensors" else 0) and not values.any()   # step 0: None before it
    assert "gradients_not_cleared" not in _symptoms(path)


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
def test_accumulating_without_clearing_reads_as_carried(tmp_path, device_path):
    path = train(tmp_path / "run.h5", 0, clear="never", accumulate=4, steps=20, device_path=device_path)
    steps, values = _carried(path)
    assert len(values) == 19 and np.all(values == 1)


def _gan(path, seed, clear_d: bool):
    torch.manual_seed(seed)
    G = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6))
    D = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4), torch.optim.Adam(D.parameters(), 2e-4)
    bce = F.binary_cross_entropy_with_logits
    with Recorder(path) as rec:
        rec.watch(D, opt_d)
        for _ in range(40):
            if clear_d:
                D.zero_grad()
            real, fake = torch.randn(16, 6) + 2, G(torch.randn(16, 4))
            err_real = bce(D(real), torch.ones(16, 1))
            err_real.backward()
            err_fake = bce(D(fake.detach()), torch.zeros(16, 1))
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            bce(D(fake), torch.ones(16, 1)).backward()   # flows into D's gradients after D's update
            opt_g.step()
            rec.log({"errD": err_real + err_fake})
    return path


@pytest.mark.parametrize("seed", SEEDS)
def test_a_gan_generator_pass_through_the_discriminator_is_not_a_missing_zero_grad(tmp_path, seed):
    steps, values = _carried(_gan(tmp_path / "ok.h5", seed, True))
    assert len(values) == 0
    assert "gradients_not_cleared" not in _symptoms(tmp_path / "ok.h5")
    steps, values = _carried(_gan(tmp_path / "bug.h5", seed, False))
    assert len(values) == 39 and np.all(values == 1)


def test_a_closure_step_is_judged_after_its_backward(tmp_path):
    model = _net()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=3)
    g = torch.Generator().manual_seed(0)
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        for _ in range(10):
            x, y = _batch(g)

            def closure():
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss
            rec.log({"train/loss": opt.step(closure)})
    steps, values = _carried(tmp_path / "run.h5")
    assert steps is not None and len(values) == 0        # measured (the series is named), always reset
