"""watch() after the optimizer's first steps (minGPT's Trainer makes the optimizer inside run():
on_batch_end of iter 0 is the first place a user can watch): every gradient record was labelled
with the step before its own, one off from the losses logged with step=iter_num. An optimizer
that counts its steps (Adam, AdamW, RMSprop...) tells the recorder where to go on from."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


@pytest.mark.parametrize("opt_cls", [torch.optim.AdamW, torch.optim.RMSprop])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_line_up_with_the_iterations_after_a_late_watch(tmp_path, opt_cls, seed):
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
            rec.log({"train/loss": loss, "hand/grad_norm": norm}, step=it)
    with open_run(tmp_path / "r.h5") as run:
        g, h = run.scalar("sys/grad_norm"), run.scalar("hand/grad_norm")
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
