"""Models with lazy layers (nn.LazyLinear, nn.LazyConv2d): their parameters have no shape until
the first forward. watch() before it (where scripts call it) raised "Can't access the shape of an
uninitialized parameter" out of the user's script; now the layout waits for that forward."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 6


def lazy_net():
    return nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(16), nn.Tanh(), nn.LazyLinear(3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lazy_model_watched_before_its_first_forward_is_recorded_from_step_0(tmp_path, seed):
    torch.manual_seed(seed)
    model = lazy_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(seed)
    grad_norms = []
    with Recorder(tmp_path / "lazy.h5", stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            x, y = torch.randn(8, 1, 6, 6, generator=data), torch.randint(0, 3, (8,), generator=data)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            grad_norms.append([float(p.grad.norm()) for p in model.parameters()])
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": loss})
    run = open_run(tmp_path / "lazy.h5")
    grads = run.layer_stat("grad_norm")
    assert grads.layers == ["0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    assert list(grads.steps) == list(range(STEPS))
    np.testing.assert_allclose(grads.values, grad_norms, rtol=1e-5)
    assert list(run.scalar("train/loss").steps) == list(range(STEPS))   # the first forward's label too
    assert [m.type for m in run.modules][:1] == ["Conv2d"]
    assert list(run.layer_stat("act_std").steps) == list(range(1, STEPS))   # from the second forward


def test_a_lazy_model_that_never_ran_closes_cleanly_and_keeps_its_logs(tmp_path):
    model = lazy_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # nothing to warn about
        with Recorder(tmp_path / "idle.h5") as rec:
            rec.watch(model, torch.optim.SGD(model.parameters(), lr=0.1))
            rec.log({"train/loss": 1.0}, step=0)
    assert not model._forward_hooks                # the waiting hook is gone with the recorder
    assert list(open_run(tmp_path / "idle.h5").scalar("train/loss").values) == [1.0]
    model(torch.randn(2, 1, 6, 6))                 # the model works on without the recorder


def test_watch_called_again_while_waiting_warns_once_and_is_ignored(tmp_path):
    model = lazy_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "twice.h5") as rec:
        rec.watch(model, opt)
        with pytest.warns(UserWarning, match="second time"):
            rec.watch(model, opt)
        model(torch.randn(2, 1, 6, 6)).sum().backward()
        opt.step()
    assert len(open_run(tmp_path / "twice.h5").layer_stat("grad_norm").steps) == 1
