"""Optimizers that are torch Optimizers themselves and step another one inside: SAM (whose
training loop calls ``first_step()``/``second_step()``, never ``step()``), SAM's ``step(closure)``
and a Lookahead-style wrapper. The records follow the inner optimizer's steps."""
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
STEPS = 25


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation as the popular implementation (davda54/sam) writes it."""

    def __init__(self, params, base_optimizer, rho=0.05, **kwargs):
        super().__init__(params, {"rho": rho, **kwargs})
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        norm = torch.stack([p.grad.norm() for g in self.param_groups for p in g["params"] if p.grad is not None]).norm()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["old_p"] = p.data.clone()
                    p.add_(p.grad * (group["rho"] / (norm + 1e-12)))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.data = self.state[p]["old_p"]
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure=None):
        self.first_step(zero_grad=True)
        torch.enable_grad()(closure)()
        self.second_step()


class Lookahead(torch.optim.Optimizer):
    """k fast steps of the inner optimizer, then the slow weights move towards the fast ones."""

    def __init__(self, base, k=3, alpha=0.5):
        self.base, self.k, self.alpha, self.count = base, k, alpha, 0
        super().__init__(base.param_groups, {})
        self.param_groups = base.param_groups
        self.slow = [p.detach().clone() for g in self.param_groups for p in g["params"]]

    @property
    def optimizer(self):
        return self.base

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.base.step(closure)
        self.count += 1
        if self.count % self.k == 0:
            for s, p in zip(self.slow, (p for g in self.param_groups for p in g["params"])):
                s.add_(p - s, alpha=self.alpha)
                p.copy_(s)
        return loss


def train(path, seed, style):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    if style == "lookahead":
        opt = Lookahead(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    else:
        opt = SAM(model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9)
    data = torch.Generator().manual_seed(seed)
    applied = []     # norms of the gradients each step applied (SAM: the second backward's)
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            x, y = torch.randn(16, 8, generator=data), torch.randn(16, 1, generator=data)

            def closure(x=x, y=y):
                loss = F.mse_loss(model(x), y)
                loss.backward()
                return loss
            if style == "sam-two-steps":
                closure()
                opt.first_step(zero_grad=True)
                loss = closure()
                applied.append([p.grad.norm().item() for p in model.parameters()])
                opt.second_step(zero_grad=True)
            elif style == "sam-closure":     # the loop of davda54/sam's README
                norms = []

                def recording_closure(norms=norms):
                    out = closure()
                    norms.append([p.grad.norm().item() for p in model.parameters()])
                    return out
                loss = closure()
                opt.step(recording_closure)
                opt.zero_grad()
                applied.append(norms[-1])
            else:
                opt.zero_grad()
                loss = closure()
                applied.append([p.grad.norm().item() for p in model.parameters()])
                opt.step()
            rec.log({"train/loss": loss})
    return applied


@pytest.mark.parametrize("style", ["sam-two-steps", "sam-closure", "lookahead"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_inner_optimizers_steps_are_the_runs_steps(tmp_path, seed, style):
    applied = train(tmp_path / "run.h5", seed, style)
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar("train/loss").steps.tolist() == list(range(STEPS))
        grads = run.layer_stat("grad_norm")
        assert grads.steps.tolist() == list(range(STEPS))
        np.testing.assert_allclose(grads.values, applied, rtol=1e-5)
        assert run.scalar(fmt.lr_tag(0)).values.tolist() == pytest.approx([0.05] * STEPS)
        assert run.layer_stat("weight_norm").steps.tolist() == list(range(STEPS))
