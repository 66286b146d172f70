"""One model, two optimizers (Muon on the matrices and AdamW on the rest, as in modded-nanogpt;
SparseAdam beside Adam), or weights edited after the step (WGAN's clipping): the update of a
scheduled step is the change of every weight until the next training forward, not only the
watched optimizer's. Measured at its post-step hook, the other parameters' updates were 0 and
the advisor called them frozen."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 40


def train(path, seed, order, device_path):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    matrices = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    watched = torch.optim.SGD(matrices, lr=0.05, momentum=0.9)
    other = torch.optim.AdamW(rest, lr=1e-2)
    data = torch.Generator().manual_seed(seed)
    before, after = [], []      # weights before the iteration's first step, and at the next one's start

    def weights():
        return [p.detach().clone() for p in model.parameters()]
    with Recorder(path, stats_every=10, dense_start=15, _device_path=device_path) as rec:
        rec.watch(model, watched)
        for step in range(STEPS):
            if step:
                after.append(weights())
            x, y = torch.randn(32, 8, generator=data), torch.randint(0, 3, (32,), generator=data)
            loss = F.cross_entropy(model(x), y)
            watched.zero_grad()
            other.zero_grad()
            loss.backward()
            before.append(weights())        # before the iteration's first optimizer step
            if order == "other first":
                other.step()
            watched.step()
            if order in ("watched first", "clipped"):
                other.step()
            if order == "clipped":           # WGAN: clip every weight after the step
                with torch.no_grad():
                    for p in model.parameters():
                        p.clamp_(-0.05, 0.05)
            rec.log({"train/loss": loss})
        after.append(weights())              # the last update is measured at close()
    expected = [[float(torch.linalg.vector_norm(a - b)) for a, b in zip(after[t], before[t])] for t in range(STEPS)]
    return np.array(expected)


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("order", ["watched first", "other first", "clipped"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_updates_count_every_change_until_the_next_forward(tmp_path, seed, order, device_path):
    expected = train(tmp_path / "run.h5", seed, order, device_path)
    with open_run(tmp_path / "run.h5") as run:
        upd = run.layer_stat("update_norm")
        steps = upd.steps.tolist()
        assert steps == list(range(15)) + [20, 30]
        # "watched first": the other optimizer is first seen after the watched one's first step
        first = 0 if order == "other first" else 1
        np.testing.assert_allclose(upd.values[first:], expected[steps][first:], rtol=1e-4, atol=1e-7)
        assert (upd.values > 0).any(axis=0).all()   # every parameter moved (AdamW's, before or after)
    assert "frozen_layers" not in {f.symptom for f in diagnose(tmp_path / "run.h5")}


def test_an_optimizer_the_script_drops_is_not_kept_alive(tmp_path):
    """The global step hook remembers which optimizers hold the model's parameters, weakly: a
    script that makes a new optimizer each epoch must not keep the old ones' state alive."""
    import gc
    import weakref

    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    watched = torch.optim.SGD([model.weight], lr=0.1)
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, watched)
        refs = []
        for _ in range(3):                      # a new optimizer for the bias each "epoch"
            other = torch.optim.Adam([model.bias], lr=0.1)
            model(torch.randn(3, 4)).sum().backward()
            other.step()
            watched.step()
            refs.append(weakref.ref(other))
            del other
        gc.collect()
        assert all(r() is None for r in refs)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_step_that_raised_and_was_caught_does_not_stop_the_window(tmp_path, seed):
    """A script that catches a failing step (CUDA out of memory at Adam's first step, say) and
    skips the batch: that step ran no post hooks, the recorder took every later forward for one
    inside a step, and the other optimizer's updates were left out of the weight updates."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    watched = torch.optim.SGD([p for p in model.parameters() if p.dim() == 2], lr=0.05)
    other = torch.optim.AdamW([p for p in model.parameters() if p.dim() < 2], lr=1e-2)
    fail = {"left": 1}

    def out_of_memory_once(opt, args, kwargs):
        if fail["left"]:
            fail["left"] -= 1
            raise RuntimeError("CUDA out of memory (simulated)")

    data = torch.Generator().manual_seed(seed)
    windows, ends = {}, {}       # optimizer step -> weights before its iteration's first step, at the next forward
    k = 0                        # optimizer steps taken
    with Recorder(tmp_path / "run.h5", stats_every=1) as rec:
        rec.watch(model, watched)
        for it in range(10):
            if k - 1 in windows and k - 1 not in ends:
                ends[k - 1] = [p.detach().clone() for p in model.parameters()]
            x, y = torch.randn(32, 8, generator=data), torch.randint(0, 3, (32,), generator=data)
            loss = F.cross_entropy(model(x), y)
            watched.zero_grad()
            other.zero_grad()
            loss.backward()
            before = [p.detach().clone() for p in model.parameters()]
            other.step()
            if it == 3:
                handle = watched.register_step_pre_hook(out_of_memory_once)
            try:
                watched.step()
            except RuntimeError:
                handle.remove()
                continue                         # the batch is skipped
            windows[k] = before
            k += 1
        ends[k - 1] = [p.detach().clone() for p in model.parameters()]
    with open_run(tmp_path / "run.h5") as run:
        upd = run.layer_stat("update_norm")
        later = [i for i, s in enumerate(upd.steps) if 4 <= s < 9]
        assert len(later) == 5
        expected = [[float(torch.linalg.vector_norm(a - b)) for a, b in zip(ends[s], windows[s])]
                    for s in upd.steps[later]]
        np.testing.assert_allclose(upd.values[later], expected, rtol=1e-4, atol=1e-7)
