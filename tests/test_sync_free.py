"""Sync tripwire: the recorder's GPU code path never reads a tensor value on the training thread.

There is no GPU here, so the recorder is told to take its device code path for CPU tensors
(``Recorder(..., _device_path=True)``). Every way Python code can pull a tensor value to the
host (``.item()``, ``bool()``/``float()``/``int()``/index, ``tolist()``, ``numpy()``, blocking
``.cpu()``/``.to(cpu)``/``copy_`` into host memory, ``torch.equal``...) is wrapped, and so are the
aten ops whose output size depends on tensor values (``nonzero``, boolean indexing, ...), which
synchronise on a GPU too. A call counts against the recorder when it happens on the main
(training) thread with a frame of the recorder package on the stack; the test's own
``.item()`` calls, and the writer thread's ``numpy()``, are allowed.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import trainspect.recorder as recorder
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder import device_stats

torch.set_num_threads(1)
# Both spellings: imported through a symlinked path, code objects carry the unresolved one.
RECORDER_DIR = tuple({str(Path(recorder.__file__).parent) + os.sep,
                      str(Path(recorder.__file__).resolve().parent) + os.sep})
TENSOR_READS = ("item", "__bool__", "__float__", "__int__", "__index__", "__complex__", "tolist",
                "numpy", "__array__", "cpu", "equal", "allclose")
TORCH_READS = ("equal", "allclose", "is_nonzero")
aten = torch.ops.aten
# aten ops that read values to the host on a GPU (output shape depends on the data).
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default,
            aten.is_nonzero.default, aten.equal.default, aten.repeat_interleave.Tensor}


# The user's GradScaler and optimizer run inside the recorder's pass-through wrapper of
# GradScaler.step (recorder/amp.py): their own reads (the scaler's overflow check) are not ours.
USER_CODE_UNDER_RECORDER = (os.sep + os.path.join("torch", "amp", "grad_scaler.py"), os.sep + os.path.join("torch", "optim", ""))


def _recorder_frame(frame):
    """The innermost frame of the recorder package on ``frame``'s stack, or None (also when
    the read comes from a GradScaler or optimizer that recorder code called on the user's behalf)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(RECORDER_DIR):
            return frame
        if any(part in name for part in USER_CODE_UNDER_RECORDER):
            return None
        frame = frame.f_back
    return None


def _to_cpu_blocking(args, kwargs) -> bool:
    """Does ``Tensor.to(*args, **kwargs)`` copy to the CPU without ``non_blocking=True``?"""
    targets = [*args, kwargs.get("device"), kwargs.get("other")]
    cpu = any((isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu")
              or (isinstance(a, torch.Tensor) and a.device.type == "cpu") for a in targets)
    non_blocking = kwargs.get("non_blocking", next((a for a in args if isinstance(a, bool)), False))
    return cpu and not non_blocking


class SyncTripwire(TorchDispatchMode):
    """Records (what, stack) for each host read made by recorder code on the main thread."""

    def __init__(self):
        super().__init__()
        self.hits: list[tuple[str, str]] = []
        self._saved: list = []

    def _hit(self, what: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        frame = _recorder_frame(sys._getframe(2))
        if frame is not None:
            self.hits.append((what, "".join(traceback.format_stack(frame, limit=6))))

    def _wrap(self, owner, name, should_flag=None):
        original = owner.__dict__.get(name)
        inherited = getattr(owner, name)
        self._saved.append((owner, name, original))
        label = f"{getattr(owner, '__name__', owner)}.{name}"

        def wrapper(*args, **kwargs):
            if should_flag is None or should_flag(*args, **kwargs):
                self._hit(label)
            return inherited(*args, **kwargs)
        setattr(owner, name, wrapper)

    def __enter__(self):
        for name in TENSOR_READS:
            self._wrap(torch.Tensor, name)
        self._wrap(torch.Tensor, "to", lambda t, *a, **k: _to_cpu_blocking(a, k))
        self._wrap(torch.Tensor, "copy_", lambda dst, src, non_blocking=False:
                   dst.device.type == "cpu" and not non_blocking)
        for name in TORCH_READS:
            self._wrap(torch, name)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for owner, name, original in reversed(self._saved):
                if original is None:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)
            self._saved = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in SYNC_OPS or (func is aten.index.Tensor and any(
                i is not None and i.dtype == torch.bool for i in args[1])):
            self._hit(f"aten.{func.__name__}")
        return func(*args, **kwargs)

    def report(self) -> str:
        return "\n".join(f"{what} from\n{stack}" for what, stack in self.hits[:5])


# ------------------------------------------------------------------ models
def mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                torch.nn.Tanh(), torch.nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def batch(g):
        return torch.randn(8, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
    return model, opt, batch, torch.nn.functional.cross_entropy


def transformer():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.TransformerEncoder(
        layer, 2, enable_nested_tensor=False), torch.nn.Linear(16, 4))
    # A tensor learning rate (as used with capturable/compiled optimizers) takes the device path
    # of the LR instrument; the scheduler updates it in place.
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3), foreach=False)

    def batch(g):
        return torch.randn(4, 6, 8, generator=g), torch.randint(0, 4, (4, 6), generator=g)

    def loss_fn(out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 4), y.reshape(-1))
    return model, opt, batch, loss_fn


SCHEDULES = {"default": {}, "every step": {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}}
STEPS = 120
CHECK_STEPS = (0, 1, 49, 50, 77, 100, 119)


def train(path, make, schedule, steps=STEPS, device_path=True):
    """Train with the device path forced; returns reference values computed by the test itself."""
    model, opt, batch, loss_fn = make()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5)
    g = torch.Generator().manual_seed(1)
    ref = {"grad_norm": {}, "loss": [], "running": [], "lr": []}
    running = torch.zeros(())      # an accumulator the user keeps updating in place
    with Recorder(path, flush_every=0.2, _device_path=device_path, **SCHEDULES[schedule]) as rec:
        assert rec._device_path == rec.staging.device_path == device_path
        # watch() is set-up, outside the tripwire: it reads a tensor learning rate once for the
        # metadata JSON (recorder/metadata.py json_safe). The claim under test is per step.
        rec.watch(model, opt)
        assert rec._instruments.cpu_fast_path is not device_path
        with SyncTripwire() as trip:
            for step in range(steps):
                x, y = batch(g)
                out = model(x)
                loss = loss_fn(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if step in CHECK_STEPS:
                    ref["grad_norm"][step] = [torch.linalg.vector_norm(p.grad).item() for p in model.parameters()]
                lr = opt.param_groups[0]["lr"]
                ref["lr"].append(float(lr))
                opt.step()
                sched.step()
                running += loss.detach()
                ref["loss"].append(loss.item())
                ref["running"].append(running.item())
                rec.log({"train/loss": loss, "train/running": running,
                         "train/correct": (out.argmax(-1) == y).sum(),   # int64 0-d tensor
                         "train/ok": torch.tensor(True), "train/step_f64": torch.tensor(step, dtype=torch.float64),
                         "plain": 0.5 * step})
                if step == 60:
                    assert rec.flush()       # a transfer + write cycle mid-run
    return trip, ref


def check_file(path, ref, steps=STEPS):
    with open_run(path) as run:
        assert run.status().state == "finished"
        gn = run.layer_stat("grad_norm")
        assert gn.steps.tolist() == list(range(steps))
        for step in CHECK_STEPS:
            np.testing.assert_allclose(gn.values[step], ref["grad_norm"][step], rtol=1e-5, err_msg=f"step {step}")
        total = run.scalar(fmt.SYS_GRAD_NORM)
        assert total.values[CHECK_STEPS[2]] == pytest.approx(np.linalg.norm(ref["grad_norm"][CHECK_STEPS[2]]),
                                                             rel=1e-5)
        assert run.scalar(fmt.SYS_NONFINITE_GRADS).values.tolist() == [0.0] * steps
        np.testing.assert_allclose(run.scalar("train/loss").values, ref["loss"], rtol=1e-6)
        np.testing.assert_allclose(run.scalar("train/running").values, ref["running"], rtol=1e-6)
        np.testing.assert_allclose(run.scalar(fmt.lr_tag(0)).values, ref["lr"], rtol=1e-6)
        assert run.scalar("train/ok").values.tolist() == [1.0] * steps
        assert run.scalar("train/step_f64").values.tolist() == list(map(float, range(steps)))
        assert run.scalar("plain").values.tolist() == [0.5 * s for s in range(steps)]
        assert set(run.layer_stat_names()) >= {"grad_norm", "weight_norm", "update_norm", "act_mean"}
        return run.histograms("weight"), run.snapshots(), run.layer_stat("weight_norm")


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("make", [mlp, transformer], ids=["mlp", "transformer"])
def test_device_path_makes_no_host_reads_on_the_training_thread(tmp_path, make, schedule):
    steps = STEPS
    trip, ref = train(tmp_path / "run.h5", make, schedule, steps)
    assert not trip.hits, f"{len(trip.hits)} host read(s) by the recorder on the training thread:\n{trip.report()}"
    hists, snaps, weights = check_file(tmp_path / "run.h5", ref, steps)
    # default: stats_every=50 with the dense start (each of the first 100 steps), hists every 200
    expected = list(range(steps)) if schedule == "every step" else list(range(100)) + [100]
    assert weights.steps.tolist() == expected
    assert hists.steps.tolist() == (expected if schedule == "every step" else [0])
    assert snaps.steps.tolist() == hists.steps.tolist()
    assert (hists.counts.sum(axis=2) > 0).all()


def test_a_found_grad_scaler_adds_no_host_reads(tmp_path):
    """A GradScaler not given to watch(), adopted at its first step (recorder/amp.py): its
    skipped steps are counted and the norms unscaled without a host read of ours."""
    from tests.test_scaler_found import amp_run

    with SyncTripwire() as trip:
        applied = amp_run(tmp_path / "run.h5", 0, give_scaler=False, device_path=True, user_steps=False)
    assert not trip.hits, f"{len(trip.hits)} host read(s) by the recorder on the training thread:\n{trip.report()}"
    with open_run(tmp_path / "run.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == sorted(applied)
        assert len(run.scalar(fmt.SYS_AMP_SKIPPED).steps) == 30 - len(applied) > 0


# A copy of device_stats.mean_std with a host read added, compiled under device_stats.py's file
# name so the tripwire sees it as recorder code: proves the tripwire can fail.
_SYNCING = {
    "item": "def mean_std(flat):\n    m = flat.mean()\n    m.item()\n    c = flat - m\n"
            "    return m, torch.sqrt(torch.dot(c, c) / flat.numel())\n",
    "nonzero": "def mean_std(flat):\n    m = flat.mean()\n    flat[flat > m]\n    c = flat - m\n"
               "    return m, torch.sqrt(torch.dot(c, c) / flat.numel())\n",
    "to_cpu": "def mean_std(flat):\n    m = flat.mean().to('cpu')\n    c = flat - m\n"
              "    return m, torch.sqrt(torch.dot(c, c) / flat.numel())\n",
}


@pytest.mark.parametrize("kind", list(_SYNCING))
def test_tripwire_catches_a_host_read_in_recorder_code(tmp_path, monkeypatch, kind):
    namespace = dict(vars(device_stats))
    exec(compile(_SYNCING[kind], device_stats.__file__, "exec"), namespace)
    monkeypatch.setattr(device_stats, "mean_std", namespace["mean_std"])
    trip, _ = train(tmp_path / "run.h5", mlp, "default", steps=3)
    assert trip.hits and all(device_stats.__file__ in stack for _, stack in trip.hits), trip.report()


def test_tripwire_ignores_the_users_own_reads_and_non_blocking_copies():
    with SyncTripwire() as trip:
        t = torch.ones(3)
        t.sum().item(), float(t[0]), t.tolist(), t.to("cpu"), t[t > 0]
        torch.empty(3).copy_(t)
    assert not trip.hits
    assert _to_cpu_blocking(("cpu",), {}) and _to_cpu_blocking((), {"device": torch.device("cpu")})
    assert not _to_cpu_blocking(("cpu",), {"non_blocking": True})
    assert not _to_cpu_blocking((torch.device("cpu"), torch.float32, True), {})
    assert not _to_cpu_blocking((torch.float64,), {})


def test_without_the_switch_the_cpu_fast_path_reads_values(tmp_path):
    # The switch matters: the CPU shortcuts read values (harmless on the CPU), the device path does not.
    trip, ref = train(tmp_path / "run.h5", mlp, "default", steps=3, device_path=False)
    # (which reads depends on the path: the C extension reads gradients without a torch call,
    # and the records' host values reach the writer as numpy arrays; the logged loss is read)
    assert "Tensor.item" in {what for what, _ in trip.hits}
