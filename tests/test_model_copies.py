"""A watched model deep-copied or pickled while recording (timm's ModelEma, torch's
swa_utils.AveragedModel, ``torch.save(model)`` checkpoints): the copy works and is inert, and
the run records the watched model exactly as without the copies."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 30


def train(path, seed, copies, device_path=False):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(seed)
    with Recorder(path, stats_every=3, _device_path=device_path) as rec:
        rec.watch(model, opt)
        ema = AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9)) if copies else None
        for step in range(STEPS):
            x, y = torch.randn(16, 6, generator=data), torch.randn(16, 1, generator=data)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
            if copies:
                ema.update_parameters(model)
                ema.train()
                ema(x)                                   # a copy's training-mode forward: not recorded
                if step % 10 == 0:
                    buf = io.BytesIO()
                    torch.save(model, buf)               # a whole-model checkpoint mid-run
                    buf.seek(0)
                    loaded = torch.load(buf, weights_only=False)
                    loaded(x).sum().backward()           # its hooks are inert: nothing recorded
                    clone = copy.deepcopy(model)
                    clone(x).sum().backward()
    return model


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_copies_and_checkpoints_of_the_watched_model_change_nothing(tmp_path, seed, device_path):
    with_copies = train(tmp_path / "copies.h5", seed, True, device_path)
    plain = train(tmp_path / "plain.h5", seed, False, device_path)
    for a, b in zip(with_copies.parameters(), plain.parameters()):
        assert torch.equal(a, b)
    with open_run(tmp_path / "copies.h5") as run, open_run(tmp_path / "plain.h5") as ref:
        assert run.status().state == "finished"
        assert run.scalar("train/loss").steps.tolist() == list(range(STEPS))
        for stat in ("grad_norm", "weight_norm", "act_mean"):
            a, b = run.layer_stat(stat), ref.layer_stat(stat)
            assert a.steps.tolist() == b.steps.tolist(), stat
            np.testing.assert_array_equal(a.values, b.values, err_msg=stat)


def test_a_pickled_watched_model_loads_and_runs_without_the_recorder(tmp_path):
    model = nn.Linear(3, 1)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, torch.optim.SGD(model.parameters(), lr=0.1))
        blob = io.BytesIO()
        torch.save(model, blob)
    blob.seek(0)
    loaded = torch.load(blob, weights_only=False)
    assert loaded(torch.ones(2, 3)).shape == (2, 1)
    assert torch.equal(loaded.weight, model.weight)


def test_a_watched_optimizer_deep_copies_and_pickles_without_the_recorder(tmp_path):
    """``best = copy.deepcopy(optimizer)`` and ``torch.save(optimizer)`` while watching work (torch
    leaves step hooks out of an optimizer's state), and a copy's step is neither recorded nor
    taken for a replacement of the watched optimizer (it holds copies of the parameters)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for _ in range(3):
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
            opt.zero_grad()
            best = copy.deepcopy(opt)
            torch.save(opt, io.BytesIO())
        model(torch.randn(4, 3)).sum().backward()
        best.step()                              # a copy's step is not the watched one's
    with open_run(tmp_path / "r.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]


# Loads a checkpoint where trainspect cannot be imported (a serving machine), then trains on.
_LOAD_WITHOUT_TRAINSPECT = """
import sys
class NoTrainspect:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'trainspect':
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoTrainspect())
import torch
model = torch.load(sys.argv[1], weights_only=False)
model(torch.ones(2, 1, 6, 6)).sum().backward()
print('ran', float(model(torch.ones(2, 1, 6, 6)).sum()))
"""


def test_a_checkpoint_saved_during_a_run_loads_where_trainspect_is_not_installed(tmp_path):
    """super_resolution's ``torch.save(model)`` every epoch: the pickle named the recorder's hook
    class, and the checkpoint failed to load without trainspect ("No module named 'trainspect'")."""
    import subprocess
    import sys

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters())
    with Recorder(tmp_path / "r.h5", stats_every=1) as rec:
        rec.watch(model, opt)
        model(torch.randn(2, 1, 6, 6)).mean().backward()
        opt.step()
        torch.save(model, tmp_path / "ckpt.pth")
        expected = float(model(torch.ones(2, 1, 6, 6)).sum())
    out = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_TRAINSPECT, str(tmp_path / "ckpt.pth")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    said, value = out.stdout.split()
    assert said == "ran" and abs(float(value) - expected) < 1e-5


def _step(rec, model, opt, x):
    """One training iteration on ``x`` (loss: the mean squared output), logged."""
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    rec.log({"train/loss": loss})


def _own_hook(module, args, kwargs, output):
    return output * 2


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
def test_a_watched_model_checkpoint_loads_with_weights_only(tmp_path, device_path):
    """torch.load's default since torch 2.6 (weights_only=True, the model's classes allowed with
    safe_globals, as pytorch/examples' word_language_model loads its best model) failed on the
    recorder's hooks: "Unsupported global: functools.partial". The copies carry no hook of the
    recorder; the user's own hooks (and their flags) are kept."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model[2].register_forward_hook(_own_hook, with_kwargs=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 4)
    with Recorder(tmp_path / "r.h5", _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            _step(rec, model, opt, x)
        blob = io.BytesIO()
        torch.save(model, blob)
        clone = copy.deepcopy(model)
    blob.seek(0)
    with torch.serialization.safe_globals([nn.Sequential, nn.Linear, nn.ReLU, _own_hook]):
        loaded = torch.load(blob)
    for copied in (loaded, clone):
        assert torch.equal(copied(x), model(x))                       # the user's hook (x2) still applies
        for m in copied.modules():
            assert "__getstate__" not in m.__dict__
            hooks = [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]
            assert all(h is _own_hook for h in hooks), hooks
        assert list(copied[2]._forward_hooks_with_kwargs) == list(copied[2]._forward_hooks)


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
def test_a_watched_model_traces_and_a_copy_scripts_mid_run(tmp_path, device_path):
    """torch.jit.trace of a watched model failed its sanity check (the hooks' statistics ops went
    into one of the tracer's two graphs); torch.jit.script compiles every forward hook, so a
    watched model is scripted through a copy, which carries none of the recorder's hooks.
    Neither export adds a step or a record to the run."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 4)
    with Recorder(tmp_path / "r.h5", stats_every=1, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for step in range(4):
            _step(rec, model, opt, x)
            if step == 1:
                traced = torch.jit.trace(model, x)
                scripted = torch.jit.script(copy.deepcopy(model))
                assert torch.allclose(traced(x), model(x)) and torch.allclose(scripted(x), model(x))
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar("train/loss").steps.tolist() == [0, 1, 2, 3]
        assert run.layer_stat("act_mean").steps.tolist() == [0, 1, 2, 3]
