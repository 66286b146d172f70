"""watch() after the optimizer's first steps (minGPT's Trainer makes the optimizer inside run():
on_batch_end of iter 0 is the first place a user can watch): every gradient record was labelled
with the step before its own, one off from the losses logged with step=iter_num. An optimizer
that counts its steps (Adam, AdamW, RMSprop...) tells the recorder where to go on from; one that
counts none (plain SGD) left its gradients or momentum behind, and the log() of the step it just
took says which step that was."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


SGD = torch.optim.SGD
SGD_MOMENTUM = functools.partial(torch.optim.SGD, momentum=0.9)


@pytest.mark.parametrize("explicit_step", [True, False])
@pytest.mark.parametrize("opt_cls", [torch.optim.AdamW, torch.optim.RMSprop, SGD, SGD_MOMENTUM])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_line_up_with_the_iterations_after_a_late_watch(tmp_path, opt_cls, seed, explicit_step):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    x, y = torch.randn(512, 8), torch.randn(512, 1)
    opt = opt_cls(model.parameters(), lr=1e-3)
    with Recorder(tmp_path / "r.h5") as rec:
        for it in range(12):
            i = torch.randint(0, 512, (32,))
            loss = nn.functional.mse_loss(model(x[i]), y[i])
            model.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it == 0:
                rec.watch(model, opt)          # the first place minGPT's callbacks allow
            norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
            rec.log({"train/loss": loss, "hand/grad_norm": norm}, step=it if explicit_step else None)
    with open_run(tmp_path / "r.h5") as run:
        g, h = run.scalar("sys/grad_norm"), run.scalar("hand/grad_norm")
        assert run.scalar("train/loss").steps.tolist() == list(range(12))
    assert g.steps.tolist() == list(range(1, 12))
    np.testing.assert_allclose(g.values, h.values[1:], rtol=1e-5)


def test_set_step_before_watch_still_wins(tmp_path):
    model = nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
    with Recorder(tmp_path / "r.h5") as rec:
        rec.set_step(100)
        rec.watch(model, opt)
        assert rec.step == 100


def test_a_model_trained_before_with_sgd_and_watched_at_the_start_counts_from_0(tmp_path):
    """Gradients left from earlier use do not shift a run whose first log() comes after its
    first training forward (a loss logged before optimizer.step())."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    model(torch.randn(2, 4)).sum().backward()          # left over, e.g. from a sanity check
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for it in range(4):
            model.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            rec.log({"loss": loss}, step=it)
            opt.step()
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar("sys/grad_norm").steps.tolist() == [0, 1, 2, 3]
