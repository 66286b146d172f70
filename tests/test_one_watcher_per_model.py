"""``lr_range_test()`` called inside a run (the run's Recorder already watching the model) left
the run's hooks on: the run counted the sweep's optimizer steps as its own, so its training
losses were logged that many steps late and its gradient records began with the sweep's. The
sweep now pauses the Recorders watching the model and resumes them when it ends."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect import lr_range_test
from trainspect.analysis import open_run
from trainspect.recorder import Recorder, amp

torch.set_num_threads(1)


def make(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def train(model, opt, rec, steps, gen):
    for _ in range(steps):
        loss = F.mse_loss(model(torch.randn(8, 4, generator=gen)), torch.randn(8, 1, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log({"train/loss": loss})


def steps_of(path, name):
    with open_run(path) as run:
        return run.scalar(name).steps.tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_an_lr_range_test_inside_a_run_leaves_the_runs_steps_alone(tmp_path, seed):
    model, opt = make(seed)
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randn(8, 4, generator=gen) for _ in range(5)]

    def train_step(x):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        train(model, opt, rec, 3, gen)
        lr_range_test(model, opt, batches, train_step, tmp_path / "sweep.h5", steps=30)
        train(model, opt, rec, 7, gen)
    assert steps_of(tmp_path / "run.h5", "train/loss") == list(range(10))
    assert steps_of(tmp_path / "run.h5", "sys/grad_norm") == list(range(10))
    sweep = steps_of(tmp_path / "sweep.h5", "sys/grad_norm")          # the sweep's own steps
    assert len(sweep) >= 3 and sweep == list(range(len(sweep)))


def test_two_recorders_on_one_model_both_record(tmp_path):
    """Two files of one training (two Lightning loggers, say) stay two full records: only the
    sweep pauses a run."""
    model, opt = make(0)
    gen = torch.Generator().manual_seed(0)
    with Recorder(tmp_path / "a.h5") as a, Recorder(tmp_path / "b.h5") as b:
        a.watch(model, opt)
        b.watch(model, opt)
        train(model, opt, None, 4, gen)
    assert steps_of(tmp_path / "a.h5", "sys/grad_norm") == steps_of(tmp_path / "b.h5", "sys/grad_norm") == [0, 1, 2, 3]


def test_a_closed_recorder_takes_its_scaler_route_with_it():
    """The route GradScaler.step takes to a recorder was compared with ``is`` to a bound
    method, which is a new object at every access: it was never removed."""
    model, opt = make(0)

    class Handler:
        def step(self, scaler, call):
            return call()
    h = Handler()
    amp.route_scaler_steps(opt, h.step)
    assert id(opt) in amp._routes
    amp.unroute_scaler_steps(opt, h.step)
    assert id(opt) not in amp._routes
