"""A GradScaler the script does not pass to watch() (nanoGPT's float16 path, the HF Trainer,
Lightning's 16-mixed): found at its first step, it gives the same records as watch(scaler=)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt

torch.set_num_threads(1)

SERIES = (fmt.SYS_GRAD_NORM, fmt.SYS_GRAD_NORM_POST_CLIP, fmt.SYS_AMP_SKIPPED, fmt.SYS_LOSS_SCALE, "train/loss")


def amp_run(path, seed, *, give_scaler, device_path, user_steps, steps=30, enabled=True):
    """nanoGPT's loop: scale, backward, unscale_, clip, scaler.step, update. init_scale is far
    too high, so the first steps overflow and are skipped, as in an fp16 warm-up."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127, growth_interval=1000, enabled=enabled)
    data = torch.Generator().manual_seed(seed)
    applied = {}
    with Recorder(path, stats_every=5, _device_path=device_path) as rec:
        rec.watch(model, opt, scaler=scaler if give_scaler else None)
        for step in range(steps):
            x, y = torch.randn(32, 8, generator=data) * 100, torch.randn(32, 1, generator=data)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            norm = float(nn.utils.clip_grad_norm_(model.parameters(), 1.0))
            scale = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if not enabled or scaler.get_scale() >= scale:
                applied[step] = norm
            rec.log({"train/loss": loss.item()}, step=step if user_steps else None)
    return applied


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("user_steps", [False, True], ids=["step=None", "step=i"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_scaler_not_given_to_watch_is_found_at_its_first_step(tmp_path, seed, user_steps, device_path):
    kw = {"device_path": device_path, "user_steps": user_steps}
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no overflow warning from the recorder on the console
        applied = amp_run(tmp_path / "found.h5", seed, give_scaler=False, **kw)
    given = amp_run(tmp_path / "given.h5", seed, give_scaler=True, **kw)
    assert given == applied                 # the same training either way
    skipped = sorted(set(range(30)) - set(applied))
    assert 3 <= len(skipped) and skipped[:3] == [0, 1, 2]
    with open_run(tmp_path / "found.h5") as found, open_run(tmp_path / "given.h5") as ref:
        assert found.scalar("train/loss").steps.tolist() == list(range(30))   # no step fell behind
        assert found.scalar(fmt.SYS_AMP_SKIPPED).steps.tolist() == skipped
        grads = found.layer_stat("grad_norm")
        assert grads.steps.tolist() == sorted(applied)
        # unscaled, before clipping: what clip_grad_norm_ returned (it saw the unscaled gradients)
        np.testing.assert_allclose(found.scalar(fmt.SYS_GRAD_NORM).values, [applied[s] for s in sorted(applied)],
                                   rtol=1e-4)
        for name in SERIES:
            a, b = found.scalar(name), ref.scalar(name)
            assert a.steps.tolist() == b.steps.tolist(), name
            np.testing.assert_allclose(a.values, b.values, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(grads.values, ref.layer_stat("grad_norm").values, rtol=1e-6)
    symptoms = {f.symptom for f in diagnose(tmp_path / "found.h5")}
    assert "nan_inf" not in symptoms     # the scaled norms overflowed float32: read as inf before
    assert symptoms == {f.symptom for f in diagnose(tmp_path / "given.h5")}


def test_a_disabled_scaler_is_plain_training(tmp_path):
    """nanoGPT in bf16: GradScaler(enabled=False) only calls optimizer.step()."""
    applied = amp_run(tmp_path / "run.h5", 0, give_scaler=False, device_path=False, user_steps=False, enabled=False)
    assert sorted(applied) == list(range(30))
    with open_run(tmp_path / "run.h5") as run:
        assert fmt.SYS_LOSS_SCALE not in run.metric_names()
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(30))


def test_a_scaler_stepping_another_optimizer_is_left_alone(tmp_path):
    """Two optimizers, one watched: the other one's scaler steps are not the run's."""
    torch.manual_seed(0)
    watched, other = nn.Linear(4, 1), nn.Linear(4, 1)
    opt_w, opt_o = torch.optim.SGD(watched.parameters(), lr=1e-2), torch.optim.SGD(other.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(watched, opt_w)
        for step in range(6):
            x = torch.randn(8, 4)
            opt_w.zero_grad()
            watched(x).pow(2).mean().backward()
            opt_w.step()
            opt_o.zero_grad()
            scaler.scale(other(x).pow(2).mean() * 1e30).backward()
            scaler.step(opt_o)          # overflows: skipped, but not a step of the watched run
            scaler.update()
            rec.log({"train/loss": float(step)})
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar("train/loss").steps.tolist() == list(range(6))
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(6))
        assert fmt.SYS_AMP_SKIPPED not in run.metric_names()


def test_after_close_the_scaler_steps_as_before(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu")
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
    before = model.weight.detach().clone()
    scaler.scale(model(torch.randn(8, 4)).pow(2).mean()).backward()
    scaler.step(opt)
    scaler.update()
    assert not torch.equal(model.weight, before)
