"""TorchScript modules (``torch.jit.script``) take no forward hooks. One scripted block inside a
model switched every per-layer instrument off at the first stats step ("register_forward_hook
is not supported on ScriptModules"), and a scripted model got nothing recorded at all. The
parameters of both train like any others: their gradients and weights are recorded."""
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
STEPS = 5


def train(path, model, seed):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(seed)
    norms = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)   # torch.jit.script's own
        with Recorder(path, stats_every=1) as rec:
            rec.watch(model, opt)
            for step in range(STEPS):
                x, y = torch.randn(16, 8, generator=data), torch.randint(0, 3, (16,), generator=data)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                norms.append([float(p.grad.norm()) for p in model.parameters()])
                opt.step()
                opt.zero_grad()
                rec.log({"train/loss": loss}, step=step)
    return open_run(path), np.array(norms), [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scripted_block_inside_a_model_leaves_the_other_instruments_on(tmp_path, seed):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        block = torch.jit.script(nn.Sequential(nn.Linear(8, 32), nn.ReLU()))
    model = nn.Sequential(block, nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))
    run, norms, caught = train(tmp_path / "block.h5", model, seed)
    assert not [m for m in caught if "instrument failed" in m], caught
    grads = run.layer_stat("grad_norm")
    assert grads.layers == ["0.0.weight", "0.0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    np.testing.assert_allclose(grads.values, norms, rtol=1e-5)
    acts = run.layer_stat("act_std")
    assert acts.layers == ["1", "2", "3"] and list(acts.steps) == list(range(STEPS))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scripted_model_records_gradients_and_says_what_it_cannot(tmp_path, seed):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.script(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)))
    run, norms, caught = train(tmp_path / "scripted.h5", model, seed)
    np.testing.assert_allclose(run.layer_stat("grad_norm").values, norms, rtol=1e-5)
    assert list(run.layer_stat("update_norm").steps) == list(range(STEPS))
    assert sum("TorchScript" in m for m in caught) == 1, caught
