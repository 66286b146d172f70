"""model.forward(x) instead of model(x): the model's own forward hooks never run.

The loss logged after optimizer.step() then landed one step late (losses at 1..5, gradients
at 0..4), and no activation or input statistics came, without a word. The model's parts
still run through their __call__: until the loop is seen calling the model itself, their
forwards mark the step label, and the user is told once what is lost.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _train(path, seed, call, optimizer="sgd", aux=False, steps=5):
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05) if optimizer == "sgd" else \
        torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=2)
    hooks_before = [len(c._forward_pre_hooks) for c in model.children()]
    rec = Recorder(path)
    rec.watch(model, opt, stats_every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            x = torch.randn(16, 4)
            if aux:   # a part used on its own first (an auxiliary loss), then the model
                model.a(x).pow(2).mean().backward()

            def closure(x=x):
                opt.zero_grad()
                loss = (model.forward(x) if call == "forward" else model(x)).pow(2).mean()
                loss.backward()
                return loss

            if optimizer == "sgd":
                loss = closure()
                opt.step()
            else:
                loss = opt.step(closure)   # LBFGS: the forwards run inside step()
            rec.log({"loss": float(loss)})
        rec.close()
    hooks_after = [len(c._forward_pre_hooks) for c in model.children()]
    said = [str(w.message) for w in caught if "trainspect" in str(w.message)]
    return said, hooks_before, hooks_after


@pytest.mark.parametrize("seed", [0, 1])
def test_model_forward_called_directly_is_labelled_and_said(tmp_path, seed):
    said, _, _ = _train(tmp_path / "run.h5", seed, "forward")
    assert len(said) == 1 and "model.forward(x) instead of model(x)" in said[0]
    with open_run(tmp_path / "run.h5") as run:
        grads = run.layer_stat("grad_norm").steps.tolist()
        assert grads == [0, 1, 2, 3, 4]
        assert run.scalar("loss").steps.tolist() == grads      # not one step late


@pytest.mark.parametrize("case", [{}, {"aux": True}, {"optimizer": "lbfgs"}])
def test_a_loop_that_calls_the_model_hears_nothing_and_keeps_no_part_hooks(tmp_path, case):
    said, before, after = _train(tmp_path / "run.h5", 0, "call", **case)
    assert said == []
    assert after == before
    with open_run(tmp_path / "run.h5") as run:
        assert len(run.layer_stat("act_mean").steps) == 5
        assert run.scalar("loss").steps.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_leaf_module_that_calls_its_own_forward_is_labelled_and_said(tmp_path, seed):
    """pytorch/examples' forward-forward layers train themselves with self.forward(x): a watched
    nn.Linear has no parts to see it by. The step is labelled at optimizer.step() instead."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(20, 10)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x = torch.randn(64, 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "run.h5") as rec:
            rec.watch(layer, opt)
            for _ in range(6):
                loss = layer.forward(x).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    said = [str(w.message) for w in caught if "trainspect" in str(w.message)]
    assert len(said) == 1 and "self.forward(x) called directly" in said[0]
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar("train/loss").steps.tolist() == run.scalar("sys/grad_norm").steps.tolist() == list(range(6))
