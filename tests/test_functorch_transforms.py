"""torch.func's vmap/grad over the watched model in train mode (an ensemble's vmapped pass, a
meta-learning inner step, a gradient penalty) ran the recorder's hooks on wrapped tensors that
have no storage: the first statistic failed and every instrument went off for the rest of the
run (sys/lr, sys/grad_norm and grads/ stopped at step 0 while the training went on)."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def _vmapped(model, x, y):
    vmap(model)(x.view(4, 16, 8))


def _func_grad(model, x, y):
    params = {k: v.detach() for k, v in model.named_parameters()}
    grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x,)), y))(params)


@pytest.mark.parametrize("transform", [_vmapped, _func_grad])
def test_a_torch_func_transform_of_the_watched_model_leaves_the_recording_on(tmp_path, transform):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = torch.randn(64, 8), (torch.randn(64) > 0).long()
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no "instruments switched off"
        with Recorder(tmp_path / "r.h5") as rec:
            rec.watch(model, opt)
            for step in range(10):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
                if step % 3 == 0:
                    transform(model, x, y)
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar("sys/grad_norm").steps.tolist() == list(range(10))
        assert run.scalar("train/loss").steps.tolist() == list(range(10))
        assert run.layer_stat("act_mean").steps.tolist() == list(range(10))
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(10))


class _ChunkedHead(nn.Module):
    """A model that vmaps one of its layers inside its own forward (per-chunk heads)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        h = self.body(x)
        return vmap(self.head)(h.view(4, -1, 32)).reshape(-1, 2)


def test_a_layer_vmapped_inside_the_training_forward_is_skipped_the_rest_recorded(tmp_path):
    torch.manual_seed(0)
    model = _ChunkedHead()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = torch.randn(64, 8), (torch.randn(64) > 0).long()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Recorder(tmp_path / "r.h5") as rec:
            rec.watch(model, opt)
            for _ in range(5):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "r.h5") as run:
        acts = run.layer_stat("act_mean")
        assert acts.steps.tolist() == list(range(5))
        assert run.scalar("sys/grad_norm").steps.tolist() == list(range(5))
