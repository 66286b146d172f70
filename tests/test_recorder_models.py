"""The recorder on real-world PyTorch patterns that broke it: each test is a short CPU training
loop that must train exactly as without the recorder and leave a correct, readable file."""
from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

torch.set_num_threads(1)
EVERY = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}


def batch(step, rows=4, dim=8):
    g = torch.Generator().manual_seed(step)
    return torch.randn(rows, dim, generator=g), torch.randn(rows, 2, generator=g)


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def train(model, opt, steps, rec=None):
    losses = []
    for step in range(steps):
        x, y = batch(step)
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if rec is not None:
            rec.log({"train/loss": loss})
    return losses


def test_empty_parameter_keeps_every_instrument_on(tmp_path):
    """A 0-element weight matrix (e.g. a head sized from an empty config list) made the snapshot
    raise, which switched off all per-layer instruments after the first step."""
    def make():
        model = mlp()
        model.register_parameter("unused_head", torch.nn.Parameter(torch.zeros(0, 16)))
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    bare = train(*make(), steps=4)
    model, opt = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecorderWarning)
        with Recorder(tmp_path / "run.h5", **EVERY) as rec:
            rec.watch(model, opt)
            recorded = train(model, opt, 4, rec)
    assert recorded == bare
    with open_run(tmp_path / "run.h5") as run:
        names = [p.name for p in run.params]
        assert "unused_head" in names
        for stat in ("grad_norm", "weight_norm", "act_mean"):
            assert run.layer_stat(stat).steps.tolist() == [0, 1, 2, 3], stat
        snaps = run.snapshots()
        assert snaps.steps.tolist() == [0, 1, 2, 3]
        assert "unused_head" not in snaps.layers and len(snaps.layers) == 2
        assert np.isfinite(snaps.data[-1, 0, :16, :8]).all()
        assert len(run.scalar("sys/grad_norm").values) == 4


def test_closure_optimizer_records_the_gradients_of_its_own_step(tmp_path):
    """LBFGS computes gradients inside step(closure): the gradient norms must be those of that
    step (they were missing at step 0 and one step stale afterwards)."""
    def make():
        model = mlp()
        return model, torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)

    def run_lbfgs(model, opt, rec=None):
        losses, grad_norms = [], []
        for step in range(3):
            x, y = batch(step)

            def closure():
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                return loss
            losses.append(opt.step(closure).item())
            grad_norms.append(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])).item())
            if rec is not None:
                rec.log({"train/loss": losses[-1]})
        return losses, grad_norms

    bare, _ = run_lbfgs(*make())
    model, opt = make()
    with Recorder(tmp_path / "run.h5", **EVERY) as rec:
        rec.watch(model, opt)
        recorded, grad_norms = run_lbfgs(model, opt, rec)
    assert recorded == bare
    with open_run(tmp_path / "run.h5") as run:
        gn = run.scalar("sys/grad_norm")
        assert gn.steps.tolist() == [0, 1, 2]
        np.testing.assert_allclose(gn.values, grad_norms, rtol=1e-5)
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]
        assert run.scalar("train/loss").steps.tolist() == [0, 1, 2]


@pytest.mark.parametrize("exc, reason", [(KeyboardInterrupt(), "KeyboardInterrupt: stopped by the user"),
                                         (RuntimeError("out of memory\nmore lines"), "RuntimeError: out of memory")])
def test_exception_in_with_block_keeps_data_and_says_why(tmp_path, exc, reason):
    """Ctrl-C or an error inside the with-block: every logged row is kept and the file says why
    the run ended (state/error was empty, so the run read as a bare 'crashed')."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(type(exc)):
        with Recorder(tmp_path / "run.h5") as rec:
            rec.watch(model, opt)
            train(model, opt, 3, rec)
            raise exc
    with open_run(tmp_path / "run.h5") as run:
        status = run.status()
        assert status.state == "crashed" and status.last_step == 2
        assert status.error == reason
        assert reason in status.describe()
        assert run.scalar("train/loss").steps.tolist() == [0, 1, 2]


@pytest.mark.parametrize("code, state", [(None, "finished"), (0, "finished"), (5, "crashed")])
def test_sys_exit_in_with_block_is_finished_when_it_says_success(tmp_path, code, state):
    """Early stopping by ``sys.exit()`` / ``sys.exit(0)`` inside the with-block read as "crashed
    at step 2: SystemExit: 0" in info, diagnose, compare and the app; ``sys.exit(5)`` is a failure."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SystemExit):
        with Recorder(tmp_path / "run.h5") as rec:
            rec.watch(model, opt)
            train(model, opt, 3, rec)
            sys.exit(code)
    with open_run(tmp_path / "run.h5") as run:
        status = run.status()
        assert status.state == state and status.last_step == 2
        assert ("SystemExit: 5" in status.describe()) == (code == 5)


class DictBlock(torch.nn.Module):
    def forward(self, x):
        return {"hidden": torch.relu(x) - 0.5, "aux_loss": x.pow(2).mean()}


class DictNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = torch.nn.Linear(8, 16)
        self.block = DictBlock()
        self.lstm = torch.nn.LSTM(16, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x):
        h = self.block(self.inp(x))["hidden"]
        out, _ = self.lstm(h[:, None, :])
        return self.head(out[:, -1])


def test_module_returning_a_dict_gets_activation_statistics(tmp_path):
    """Leaf modules returning a dict (or a tuple, like LSTM) never disturb the forward, and their
    first tensor is measured (a dict output used to give a NaN row)."""
    torch.manual_seed(0)
    bare_model = DictNet()
    bare = train(bare_model, torch.optim.Adam(bare_model.parameters(), 1e-3), 3)
    torch.manual_seed(0)
    model = DictNet()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    captured = {}
    def keep(module, args, out):   # returns None: a forward hook's return value replaces the output
        captured.setdefault("hidden", out["hidden"].detach())
    model.block.register_forward_hook(keep)
    with Recorder(tmp_path / "run.h5", **EVERY) as rec:
        rec.watch(model, opt)
        assert train(model, opt, 3, rec) == bare
    with open_run(tmp_path / "run.h5") as run:
        mods = [m.name for m in run.modules]
        assert mods == ["inp", "block", "lstm", "head"]
        mean = run.layer_stat("act_mean")
        assert np.isfinite(mean.values).all()
        assert mean.values[0, 1] == pytest.approx(captured["hidden"].mean().item(), rel=1e-5)


class TiedLM(torch.nn.Module):
    """Token ids in, decoder weight tied to the embedding (one Parameter, two modules)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 8)
        self.mix = torch.nn.Linear(8, 8)
        self.dec = torch.nn.Linear(8, 30, bias=False)
        self.dec.weight = self.emb.weight

    def forward(self, ids):
        return self.dec(torch.tanh(self.mix(self.emb(ids))))


def _tied():
    torch.manual_seed(0)
    model = TiedLM()
    opt = torch.optim.Adam(model.parameters(), 1e-2)

    def step(s):
        g = torch.Generator().manual_seed(s)
        ids = torch.randint(0, 30, (4, 5), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(ids).reshape(-1, 30), ids.roll(1, 1).reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()
    return model, opt, step, ["emb.weight", "mix.weight", "mix.bias"]


def _frozen_accumulate_autocast():
    """Frozen first layer (grad None), two param groups + OneCycleLR, 3 micro-batches per step,
    bf16 autocast on the CPU."""
    model = mlp()
    for p in model[0].parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                           {"params": model[2].parameters(), "lr": 0.05}], momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.05], total_steps=10)

    def step(s):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(3):
            x, y = batch(10 * s + micro)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.mse_loss(model(x).float(), y) / 3
            loss.backward()
            total += loss.item()
        opt.step()
        sched.step()
        return total
    return model, opt, step, ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize("make", [_tied, _frozen_accumulate_autocast])
def test_common_training_patterns_train_identically(tmp_path, make):
    """Patterns that must keep working: same losses as a bare run, one grads row per optimizer
    step, frozen/tied parameters listed once, NaN gradient norms only for frozen ones."""
    _, _, bare_step, _ = make()
    bare = [float(bare_step(s)) for s in range(4)]
    model, opt, step, names = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecorderWarning)
        with Recorder(tmp_path / "run.h5", **EVERY) as rec:
            rec.watch(model, opt)
            recorded = []
            for s in range(4):
                recorded.append(float(step(s)))
                rec.log({"train/loss": recorded[-1]})
    assert recorded == bare
    with open_run(tmp_path / "run.h5") as run:
        assert [p.name for p in run.params] == names
        grads = run.layer_stat("grad_norm")
        assert grads.steps.tolist() == [0, 1, 2, 3]
        frozen = [not p.requires_grad for p in model.parameters()]
        assert np.isnan(grads.values[:, frozen]).all()
        assert np.isfinite(grads.values[:, [not f for f in frozen]]).all()
        assert run.scalar("train/loss").steps.tolist() == [0, 1, 2, 3]
        assert math.isfinite(run.scalar("sys/grad_norm").values[-1])
