"""Steps that find no gradients: ``zero_grad()`` between ``backward()`` and ``step()``, no
``backward()`` at all, or no ``optimizer.step()``. The weights never move and the loss stays flat; the advisor said
"optimizer setup: some parameters have gradients but are never updated" for both, and pointed at
the optimizer's parameter list instead of the order of the calls in the loop."""
from __future__ import annotations

import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder

SEEDS = (0, 1, 2)


def _run(path, seed, mistake, frozen=False, lr=1e-3):
    import torch

    torch.manual_seed(seed)
    x, y = torch.randn(512, 12), torch.randint(0, 4, (512,))
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    if frozen:
        model.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    with Recorder(path, stats_every=10) as rec:
        rec.watch(model, opt)
        for step in range(120):
            idx = torch.randint(0, 512, (32,), generator=g)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            if mistake == "zero_grad_after_backward":
                loss.backward()
                opt.zero_grad()
            elif mistake == "no_backward" or frozen:
                opt.zero_grad()
            else:
                opt.zero_grad()
                loss.backward()
            if mistake != "no_step":
                opt.step()
            rec.log({"train/loss": loss.detach()}, step=step)


def _flat_loss(path):
    with open_run(path) as run:
        return next((f for f in diagnose(run) if f.symptom == "no_progress"), None)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_cleared_between_backward_and_step_are_named(tmp_path, seed):
    _run(tmp_path / "run.h5", seed, "zero_grad_after_backward")
    f = _flat_loss(tmp_path / "run.h5")
    assert f is not None and f.causes[0].id == "grads_cleared_before_step"
    assert "before the forward" in f.fixes[0].text


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loop_without_backward_is_named(tmp_path, seed):
    _run(tmp_path / "run.h5", seed, "no_backward")
    f = _flat_loss(tmp_path / "run.h5")
    assert f is not None and f.causes[0].id == "no_backward"
    assert "loss.backward()" in f.fixes[0].text


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loop_without_optimizer_step_is_named(tmp_path, seed):
    _run(tmp_path / "run.h5", seed, "no_step")
    f = _flat_loss(tmp_path / "run.h5")
    assert f is not None and f.causes[0].id == "no_optimizer_step"
    assert "optimizer.step()" in f.fixes[0].text


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fully_frozen_model_is_not_blamed_on_a_missing_backward(tmp_path, seed):
    """No gradient anywhere because every parameter is frozen: not the loop's order."""
    _run(tmp_path / "run.h5", seed, None, frozen=True)
    with open_run(tmp_path / "run.h5") as run:
        causes = {c.id for f in diagnose(run) for c in f.causes}
    assert not causes & {"no_backward", "grads_cleared_before_step", "no_optimizer_step"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_healthy_loop_is_not_flagged(tmp_path, seed):
    _run(tmp_path / "run.h5", seed, None)
    with open_run(tmp_path / "run.h5") as run:
        causes = {c.id for f in diagnose(run) for c in f.causes}
    assert not causes & {"no_backward", "grads_cleared_before_step", "no_optimizer_step"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_grad_scaler_that_skips_every_step_is_not_a_missing_step(tmp_path, seed):
    """Every scaled gradient inf: the GradScaler skips every optimizer step, so nothing steps and
    nothing moves; the cause is the overflow, not a loop without optimizer.step() (nor the LR)."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt, scaler=scaler)
        for step in range(100):
            loss = torch.nn.functional.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 2, (16,)))
            opt.zero_grad()
            scaler.scale(loss * float("inf")).backward()      # overflows at every step
            scaler.step(opt)
            scaler.update()
            rec.log({"train/loss": loss.detach()}, step=step)
    f = _flat_loss(tmp_path / "run.h5")
    assert f is not None and f.causes[0].id == "numerical_instability"
    assert "skipped 100 steps" in f.causes[0].why


@pytest.mark.parametrize("seed", SEEDS)
def test_instruments_that_failed_are_not_read_as_a_loop_that_never_stepped(tmp_path, seed, monkeypatch):
    """An instrument that raises switches every instrument off (training goes on): its records
    stop, the step-time one too. The recorder marks the step in the file, and the advisor does
    not take the empty records for a loop without optimizer.step() (here the LR is 0, so the
    loss is flat for another reason)."""
    import warnings

    from trainspect.recorder.records.gradients import Gradients

    def broken(self, *args, **kwargs):
        raise RuntimeError("an instrument bug")

    monkeypatch.setattr(Gradients, "compute", broken)
    monkeypatch.setattr(Gradients, "_fast_cpu", broken)   # plain float32 CPU parameters take this path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(tmp_path / "run.h5", seed, None, lr=0.0)
    assert any("instrument failed" in str(w.message) for w in caught)
    with open_run(tmp_path / "run.h5") as run:
        off = run.scalar("sys/instruments_off")
        assert list(off.values) == [1.0] and off.steps[0] == 0
        causes = {c.id for f in diagnose(run) for c in f.causes}
    assert "no_optimizer_step" not in causes
