"""A hand-written update through ``.data`` (pytorch/examples' word_language_model: ``rec.watch(model)``,
``p.data.add_(p.grad, alpha=-lr)``) with ``model.zero_grad()`` dropped: ``.data`` leaves the version
counter alone, so ``sys/grad_carried`` had no rows, nothing was found, and the loss, 5.6 % worse,
read "lr too low, raise the learning rate 10x" (trial 18 U12)."""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _hand_sgd(path, seed, *, zero_grad, device_path=False, accumulate=1, steps=60, lr=0.05, clip=None, scale=1.0):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from tests.scenario_kit import digits, mlp
    torch.manual_seed(seed)
    Xtr, ytr, _, _ = digits()
    model = mlp([64, 32, 10])
    g = torch.Generator().manual_seed(seed)
    config = {"lr": lr} if clip is None else {"lr": lr, "clip": clip}
    with Recorder(path, _device_path=device_path, config=config) as rec:
        rec.watch(model)
        for step in range(steps):
            idx = torch.randint(0, len(Xtr), (32,), generator=g)
            if zero_grad and step % accumulate == 0:
                model.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx]) * scale / accumulate
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if step % accumulate == accumulate - 1:
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)
            rec.log({"train/loss": loss.item()})


def _carried(path):
    with open_run(path) as run:
        s = run.scalar("sys/grad_carried")
        values = [] if s is None else s.values.tolist()
        found = {f.symptom: f for f in diagnose(run)}
    return values, found


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_missing_zero_grad_is_found_for_updates_through_data(tmp_path, seed, device_path):
    _hand_sgd(tmp_path / "nozero.h5", seed, zero_grad=False, device_path=device_path)
    values, found = _carried(tmp_path / "nozero.h5")
    assert len(values) >= 50 and np.mean(values) > 0.9, values
    assert "gradients_not_cleared" in found

    _hand_sgd(tmp_path / "ok.h5", seed, zero_grad=True, device_path=device_path)
    values, found = _carried(tmp_path / "ok.h5")
    assert values == [] and "gradients_not_cleared" not in found, values


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_accumulation_with_updates_through_data_is_no_carried_gradient(tmp_path, seed, device_path):
    """Four micro-batches a hand-written update, each logged (a step each): the gradients of the
    micro-batches between updates are meant to add up."""
    _hand_sgd(tmp_path / "acc.h5", seed, zero_grad=True, device_path=device_path, accumulate=4, steps=80)
    values, found = _carried(tmp_path / "acc.h5")
    assert "gradients_not_cleared" not in found, values
    assert not values or np.mean(values) <= 0.5, values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_that_ended_higher_is_never_told_to_raise_the_lr(tmp_path, seed):
    rng = np.random.default_rng(seed)
    with Recorder(tmp_path / "worse.h5") as rec:
        for step in range(120):
            rec.log({"train/loss": 5.2 + 0.3 * step / 120 + 0.05 * rng.standard_normal()}, step=step)
    found = {f.symptom: f for f in diagnose(tmp_path / "worse.h5")}
    flat = found.get("no_progress")
    assert flat is not None, list(found)
    assert "lr_too_low" not in [c.id for c in flat.causes]
    for f in found.values():
        assert not [x.text for x in f.fixes if "raise the learning rate" in x.text], (f.symptom, [x.text for x in f.fixes])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_gradient_norm_pinned_at_the_clip_is_evidence(tmp_path, seed):
    """Without zero_grad() and with clip_grad_norm_ at a max_norm above the batches' gradient norms,
    the carried gradient grows to the clip and dominates: the recorded norm sits there step after
    step; with zero_grad() it follows the batches."""
    from trainspect.analysis.advisor.signals import extract
    from trainspect.analysis.advisor.symptoms.no_progress import pinned_grad_norm
    # the word LM's gradients were ~0.05-0.08 against a clip of 0.25
    _hand_sgd(tmp_path / "pin.h5", seed, zero_grad=False, clip=0.25, steps=80, scale=0.05)
    _hand_sgd(tmp_path / "free.h5", seed, zero_grad=True, clip=0.25, steps=80, scale=0.05)
    with open_run(tmp_path / "pin.h5") as run:
        pinned = pinned_grad_norm(extract(run))
    assert pinned is not None and pinned[2] == 0.25, pinned
    with open_run(tmp_path / "free.h5") as run:
        assert pinned_grad_norm(extract(run)) is None
