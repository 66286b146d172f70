"""watch() whose instruments fail half-way leaves no hook behind.

A module that refused one of watch()'s hooks (a TorchScript block did) left the hooks already
installed calling into the half-made instruments at every forward (AttributeError in the
user's training loop). A failure now takes every hook off again:
one warning, and the training runs as without the recorder.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from trainspect.recorder import Recorder


class Refuses(torch.nn.Sequential):
    """Takes the forward pre-hook, refuses the forward hook: the install fails half-way."""

    def register_forward_hook(self, *args, **kwargs):
        raise RuntimeError("this module takes no hooks")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_failed_install_leaves_the_model_as_it_was(tmp_path, seed):
    torch.manual_seed(seed)
    model = Refuses(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(tmp_path / "run.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.watch(model, opt)
    assert any("instruments could not be installed" in str(w.message) for w in caught)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    for _ in range(3):      # the loop runs as without the recorder
        opt.zero_grad()
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.item()})
    rec.close()
