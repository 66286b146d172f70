"""``sys/grad_norm_post_clip`` exists only in runs whose clipping changed a step's gradient norm:
a run that never clips has no such metric (it used to repeat ``sys/grad_norm`` at every step,
300/300 rows equal); one that clips has it from its first clipped step on, at every step, with
the norm each step applied. A run whose steps found no gradient names it without points."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt

torch.set_num_threads(1)
STEPS = 12


def run(path, seed, *, clip_at=(), max_norm=1e-3, device_path=False, scaler=False, foreach=None):
    """SGD on a small MLP; clip_grad_norm_(max_norm) at the steps in ``clip_at`` (a tuple of
    steps, or "all"). Returns {step: norm the step applied} as the test measured it."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    amp = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4) if scaler else None
    applied = {}
    with Recorder(path, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for step in range(STEPS):
            loss = F.mse_loss(model(torch.randn(16, 6)), torch.randn(16, 2))
            opt.zero_grad()
            (amp.scale(loss) if amp else loss).backward()
            if amp:
                amp.unscale_(opt)
            if clip_at == "all" or step in clip_at:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm, foreach=foreach)
            applied[step] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
            if amp:
                amp.step(opt)
                amp.update()
            else:
                opt.step()
            rec.log({"train/loss": loss.item()})
    return applied


def series(path):
    """{step: value} of sys/grad_norm and of sys/grad_norm_post_clip (None: no such metric)."""
    with open_run(path) as r:
        pre = r.scalar(fmt.SYS_GRAD_NORM)
        if fmt.SYS_GRAD_NORM_POST_CLIP not in r.scalar_names():
            return dict(zip(pre.steps.tolist(), pre.values.tolist())), None
        post = r.scalar(fmt.SYS_GRAD_NORM_POST_CLIP)
        return dict(zip(pre.steps.tolist(), pre.values.tolist())), dict(zip(post.steps.tolist(), post.values.tolist()))


PATHS = pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])


@PATHS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_run_that_never_clips_has_no_post_clip_metric(tmp_path, seed, device_path):
    run(tmp_path / "run.h5", seed, device_path=device_path)
    pre, post = series(tmp_path / "run.h5")
    assert sorted(pre) == list(range(STEPS))
    assert post is None


@PATHS
@pytest.mark.parametrize("seed", [0, 1])
def test_clip_grad_norm_that_never_bites_adds_no_points(tmp_path, seed, device_path):
    # Called every step (as the HF Trainer does) with a threshold far above the norm: the
    # gradients are rewritten (x1.0), the applied norm is the backward's.
    run(tmp_path / "run.h5", seed, clip_at="all", max_norm=1e6, device_path=device_path)
    pre, post = series(tmp_path / "run.h5")
    assert len(pre) == STEPS and post is None


@PATHS
@pytest.mark.parametrize("seed", [0, 1])
def test_from_the_first_clipped_step_on_the_applied_norm_at_every_step_the_clipped_steps_with_the_applied_norm(tmp_path, seed, device_path):
    clip_at = (3, 4, 9)
    applied = run(tmp_path / "run.h5", seed, clip_at=clip_at, device_path=device_path)
    pre, post = series(tmp_path / "run.h5")
    assert sorted(post) == list(range(3, STEPS))      # none before the first clipped step
    for s in range(3, STEPS):
        assert post[s] == pytest.approx(applied[s], rel=1e-5)
        assert (post[s] < 0.01 * pre[s]) == (s in clip_at)


@PATHS
@pytest.mark.parametrize("seed", [0, 1])
def test_a_grad_scalers_unscale_alone_is_not_clipping(tmp_path, seed, device_path):
    run(tmp_path / "run.h5", seed, scaler=True, device_path=device_path)
    pre, post = series(tmp_path / "run.h5")
    assert len(pre) == STEPS and post is None
    applied = run(tmp_path / "clipped.h5", seed, scaler=True, clip_at=(2, 5), device_path=device_path)
    pre, post = series(tmp_path / "clipped.h5")
    assert sorted(post) == list(range(2, STEPS))
    for s in (2, 5, 6):
        assert post[s] == pytest.approx(applied[s], rel=1e-5)


def test_clipping_on_the_device_path_reads_nothing_on_the_training_thread(tmp_path):
    from tests.test_sync_free import SyncTripwire

    # foreach=False: under a TorchDispatchMode (the tripwire) torch's _foreach_mul_ does not
    # bump the gradients' version counters, so the clipping would go unseen (outside it, it does).
    with SyncTripwire() as trip:
        applied = run(tmp_path / "run.h5", 0, clip_at=(1, 2, 7), device_path=True, foreach=False)
    assert not trip.hits, trip.report()
    _, post = series(tmp_path / "run.h5")
    assert sorted(post) == list(range(1, STEPS))
    np.testing.assert_allclose([post[s] for s in range(1, STEPS)], [applied[s] for s in range(1, STEPS)], rtol=1e-5)


@PATHS
def test_steps_that_find_the_gradients_cleared_name_the_metric_without_points(tmp_path, device_path):
    # zero_grad() between backward() and step(): what the advisor calls "cleared"; it reads
    # "named, no point" as in files written before this change.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "run.h5", _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(5):
            loss = model(torch.randn(4, 6)).pow(2).mean()
            loss.backward()
            opt.zero_grad()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "run.h5") as r:
        assert fmt.SYS_GRAD_NORM_POST_CLIP in r.scalar_names()
        assert len(r.scalar(fmt.SYS_GRAD_NORM_POST_CLIP)) == 0
        assert len(r.scalar(fmt.SYS_GRAD_NORM)) == 5
