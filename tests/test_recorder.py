"""The recorder on a real (small) torch model, read back with analysis.open_run and h5py."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.recorder import NullRecorder, RecorderWarning

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def small_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 8), torch.nn.Sigmoid())


def train_and_capture(path, steps=6, **rec_kwargs):
    """Train with the recorder and keep, per step, the reference values the file must hold."""
    model = small_mlp()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                           {"params": model[2].parameters(), "lr": 0.05}], momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ref = {"grad_norm": [], "lr0": [], "lr1": [], "relu": {}, "inputs": {}, "weights_after": [],
           "update_norm": [], "weight_norm": []}
    relu_out = {}
    model[1].register_forward_hook(lambda m, a, out: relu_out.__setitem__("y", out.detach().clone()))
    g = torch.Generator().manual_seed(1)
    with Recorder(path, name="unit", config={"lr": 0.1, "tags": ("a", "b")}, **rec_kwargs) as rec:
        rec.watch(model, opt)
        for step in range(steps):
            x = torch.randn(16, 64, generator=g) * 3 + 1
            y = torch.rand(16, 8, generator=g)
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            ref["grad_norm"].append([torch.linalg.vector_norm(p.grad).item() for p in model.parameters()])
            ref["lr0"].append(opt.param_groups[0]["lr"])
            ref["lr1"].append(opt.param_groups[1]["lr"])
            ref["relu"][step] = relu_out["y"]
            ref["inputs"][step] = x
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            sched.step()
            ref["update_norm"].append([torch.linalg.vector_norm(p.detach() - b).item()
                                       for p, b in zip(model.parameters(), before)])
            ref["weight_norm"].append([torch.linalg.vector_norm(p.detach()).item() for p in model.parameters()])
            ref["weights_after"].append([p.detach().clone() for p in model.parameters()])
            rec.log({"train/loss": loss}, step=step)
    return model, ref


@pytest.mark.parametrize("steps", [7, 130])
def test_dense_start_records_every_early_step_then_the_schedule(tmp_path, steps):
    """Weights, activations and inputs on each of the first dense_start steps, then every
    stats_every: a short run is covered whatever the period (issue 12: a 60-step run had two
    records with stats_every=50). Histograms and snapshots keep their own periods."""
    path = tmp_path / "dense.h5"
    train_and_capture(path, steps=steps, stats_every=50, hist_every=200, snapshot_every=200, dense_start=5)
    expect = sorted(set(range(min(5, steps))) | set(range(0, steps, 50)))
    with open_run(path) as run:
        assert run.meta["schedule"]["dense_start"] == 5
        for stat in ("weight_norm", "update_ratio", "act_mean", "act_dead_frac"):
            assert run.layer_stat(stat).steps.tolist() == expect, stat
        assert run.scalar(fmt.SYS_INPUT_STD).steps.tolist() == expect
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(steps))
    off = tmp_path / "off.h5"
    train_and_capture(off, steps=steps, stats_every=50, dense_start=0)
    with open_run(off) as run:
        assert run.layer_stat("weight_norm").steps.tolist() == list(range(0, steps, 50))


def test_default_dense_start_covers_a_short_run(tmp_path):
    path = tmp_path / "short.h5"
    train_and_capture(path, steps=12)           # the default stats_every=50, dense_start=100
    with open_run(path) as run:
        assert run.meta["schedule"]["stats_every"] == 50 and run.meta["schedule"]["dense_start"] == 100
        assert run.layer_stat("weight_norm").steps.tolist() == list(range(12))
        assert run.layer_stat("act_mean").steps.tolist() == list(range(12))
    with pytest.raises(ValueError, match="dense_start"):
        Recorder(tmp_path / "bad.h5", dense_start=-1)


def test_round_trip_every_instrument(tmp_path, host_path):   # with and without the C extension
    path = tmp_path / "run.h5"
    # dense_start=0: the periods alone (the dense start has its own test below)
    model, ref = train_and_capture(path, steps=6, stats_every=2, hist_every=3, snapshot_every=5, dense_start=0)
    with open_run(path) as run:
        assert run.status().state == "finished"
        assert [p.name for p in run.params] == [n for n, _ in model.named_parameters()]
        assert [m.type for m in run.modules] == ["Linear", "ReLU", "Linear", "Sigmoid"]
        meta = run.meta
        assert meta["name"] == "unit" and meta["config"] == {"lr": 0.1, "tags": ["a", "b"]}
        assert meta["optimizer"]["type"] == "SGD"
        assert [g["lr"] for g in meta["optimizer"]["param_groups"]] == [0.1, 0.05]
        assert meta["model"]["n_params"] == sum(p.numel() for p in model.parameters())
        assert meta["schedule"]["stats_every"] == 2 and meta["schema_version"] == fmt.SCHEMA_VERSION
        assert set(meta["versions"]) == {"python", "torch", "trainspect", "h5py", "numpy"}

        # gradients: every optimizer step, labelled with its 0-based index
        gn = run.layer_stat("grad_norm")
        assert gn.steps.tolist() == list(range(6))
        np.testing.assert_allclose(gn.values, np.array(ref["grad_norm"]), rtol=1e-5)
        total = run.scalar(fmt.SYS_GRAD_NORM)
        np.testing.assert_allclose(total.values, np.linalg.norm(np.array(ref["grad_norm"]), axis=1), rtol=1e-5)
        assert run.layer_stat("grad_nonfinite").values.sum() == 0
        assert run.scalar(fmt.SYS_NONFINITE_GRADS).values.tolist() == [0.0] * 6

        # learning rate of each param group, as used by each step (scheduler halves it every 2)
        assert run.scalar("sys/lr").values.tolist() == ref["lr0"]
        assert run.scalar("sys/lr/1").values.tolist() == ref["lr1"]
        st = run.scalar(fmt.SYS_STEP_TIME)
        assert st.steps.tolist() == [1, 2, 3, 4, 5] and (st.values > 0).all()

        # weights on the stats schedule: norms after the step, update norm, ratio
        w = run.layer_stat("weight_norm")
        assert w.steps.tolist() == [0, 2, 4]
        np.testing.assert_allclose(w.values, np.array(ref["weight_norm"])[[0, 2, 4]], rtol=1e-5)
        u = run.layer_stat("update_norm")
        np.testing.assert_allclose(u.values, np.array(ref["update_norm"])[[0, 2, 4]], rtol=1e-4)
        np.testing.assert_allclose(run.layer_stat("update_ratio").values, u.values / w.values, rtol=1e-5)

        # activations of the ReLU (module index 1) against a direct computation
        acts = {name: run.layer_stat(name) for name in ("act_mean", "act_std", "act_absmax",
                                                         "act_frac_nonpos", "act_dead_frac", "act_frac_saturated")}
        assert acts["act_mean"].steps.tolist() == [0, 2, 4]
        for r, step in enumerate([0, 2, 4]):
            y = ref["relu"][step].numpy().astype(np.float64)
            expect = [y.mean(), y.std(), np.abs(y).max(), (y <= 0).mean(), (y.max(axis=0) <= 0).mean(),
                      (np.abs(y) > 5).mean()]
            got = [acts[k].values[r, 1] for k in acts]
            np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-6)
        # the sigmoid (index 3) counts outputs within 1 % of 0 or 1 as saturated
        sat = acts["act_frac_saturated"].values[:, 3]
        assert ((sat >= 0) & (sat <= 1)).all()

        # input statistics of the model's first argument
        x = ref["inputs"][2].numpy().astype(np.float64)
        for name, expect in (("mean", x.mean()), ("std", x.std()), ("min", x.min()), ("max", x.max())):
            s = run.scalar(f"sys/input_{name}")
            assert s.steps.tolist() == [0, 2, 4]
            assert s.values[1] == pytest.approx(expect, rel=1e-4)

        # histograms: counts sum to numel, range = [min, max] of the weights after the step
        for kind in ("weight", "grad"):
            h = run.histograms(kind)
            assert h.steps.tolist() == [0, 3]
            assert h.counts.shape == (2, 4, fmt.HIST_BINS)
            assert h.counts.sum(axis=2).tolist() == [[p.numel() for p in model.parameters()]] * 2
        h = run.histograms("weight")
        w3 = ref["weights_after"][3][0]
        np.testing.assert_allclose(h.ranges[1, 0], [w3.min().item(), w3.max().item()], rtol=1e-6)

        # snapshots: 96x64 weight block-averaged (3x2 blocks) to 32x32; 8x96 -> 8x32 + NaN padding
        sn = run.snapshots()
        assert sn.steps.tolist() == [0, 5]
        assert sn.layers == ["0.weight", "2.weight"]
        assert sn.shapes.tolist() == [[32, 32], [8, 32]]
        w5 = ref["weights_after"][5][0].numpy()
        np.testing.assert_allclose(sn.data[1, 0], w5.reshape(32, 3, 32, 2).mean(axis=(1, 3)), atol=2e-3)
        assert np.isnan(sn.data[1, 1, 8:]).all() and not np.isnan(sn.data[1, 1, :8]).any()
    with h5py.File(path, "r", locking=False) as f:   # a closed run: read without SWMR, as Run does
        assert f[f"{fmt.SNAPS}/weight"].dtype == np.float16


def test_metric_first_seen_mid_run_is_visible_live_and_nonfinite_kept(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    for step in range(10):
        rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    rec.log({"val/loss": float("nan"), "x": float("inf"), "y": -math.inf}, step=10)
    rec.log({"val/loss": 0.5, "t": torch.tensor([2.5]), "n": np.float32(3.0), "b": True}, step=11)
    assert rec.flush()
    with open_run(path) as run:    # live: the recorder is still open
        assert run.status().state == "live"
        assert "val/loss" in run.scalar_names()
        v = run.scalar("val/loss")
        assert v.steps.tolist() == [10, 11] and math.isnan(v.values[0]) and v.values[1] == 0.5
        assert run.scalar("x").values[0] == math.inf and run.scalar("y").values[0] == -math.inf
        assert run.scalar("t").values.tolist() == [2.5] and run.scalar("n").values.tolist() == [3.0]
        assert run.scalar("b").values.tolist() == [1.0]
        assert len(run.scalar("train/loss").values) == 10
    rec.close()


def test_bad_inputs_warn_once_and_are_skipped(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path)
    bad = {"s": "text", "none": None, "vec": torch.ones(3), "": 1.0,
           "sys/lr": 0.1, "arr": np.ones(2), "huge": 10**400, "ok": 2.0}   # long names: test_recorder_long_names
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.log(bad, step=0)
        rec.log(bad, step=1)            # same problems again: no new warnings
        rec.log([1.0], step=2)          # not a dict
        rec.log({"ok": 3.0}, step=-1)   # bad step
    msgs = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert len(msgs) == 9, msgs
    for needle in ("'s'", "'none'", "'vec'", "empty metric name",
                   "reserved", "'arr'", "'huge'", "dict", "step must be"):
        assert any(needle in m for m in msgs), (needle, msgs)
    assert any("'vec'" in m and "(3,)" in m for m in msgs)
    rec.log({"int": 7}, step=5)
    rec.close()
    with open_run(path) as run:
        assert run.scalar_names() == ["ok", "int"]
        assert run.status().error == ""
        assert run.scalar("ok").steps.tolist() == [0, 1]


def test_a_step_kept_as_a_tensor_or_a_whole_float_is_taken(tmp_path):
    """``step=`` from code that keeps its counter as a CPU tensor or a float (7.0) was refused
    ("step must be an int"), losing the value; a fraction, a bool or a GPU step still is."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "run.h5") as rec:
            for value, step in [(1.0, np.int64(1)), (2.0, torch.tensor(2)), (3.0, 3.0), (4.0, torch.tensor([4], dtype=torch.int32)),
                                (5.0, 5.5), (6.0, torch.tensor(6.0)), (7.0, torch.tensor(True)), (8.0, float("inf"))]:
                rec.log({"a": value}, step=step)
            rec.set_step(torch.tensor(10))
            rec.log({"a": 10.0})
    refused = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    # once per kind of step (a float, a float tensor, a bool tensor), not once per call
    assert len(refused) == 3 and all("step must be an int" in m for m in refused)
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar("a").steps.tolist() == [1, 2, 3, 4, 10]
        assert run.scalar("a").values.tolist() == [1.0, 2.0, 3.0, 4.0, 10.0]


def test_strict_mode_raises(tmp_path):
    with Recorder(tmp_path / "run.h5", strict=True) as rec:
        with pytest.raises(TypeError, match="'s'"):
            rec.log({"s": "text"})
        with pytest.raises(ValueError, match="not a scalar"):
            rec.log({"v": torch.ones(2, 2)})
        with pytest.raises(ValueError, match="empty"):
            rec.log({"": 1.0})
        with pytest.raises(TypeError):
            rec.log(3.0)


def test_step_none_counts_optimizer_steps_or_log_calls(tmp_path):
    path = tmp_path / "run.h5"
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(path) as rec:
        rec.log({"a": 1.0})                 # before watch: log counter
        rec.log({"a": 2.0})
        rec.watch(model, opt)
        rec.log({"b": 0.0})                 # 0 before any optimizer step
        for _ in range(3):
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
            opt.zero_grad()
            rec.log({"b": 1.0})
    with open_run(path) as run:
        assert run.scalar("a").steps.tolist() == [0, 1]
        # after a forward, the step that forward feeds (the same as its gradient records)
        assert run.scalar("b").steps.tolist() == [0, 0, 1, 2]
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]


def test_watch_without_optimizer_records_at_log(tmp_path, host_path):
    path = tmp_path / "run.h5"
    model = small_mlp()
    with Recorder(path, stats_every=1, hist_every=0, snapshot_every=0) as rec:
        rec.watch(model)
        for step in range(3):
            out = model(torch.randn(8, 64))
            out.sum().backward()
            rec.log({"loss": out.mean()})
            model.zero_grad()
    with open_run(path) as run:
        assert run.layer_stat("act_mean").steps.tolist() == [0, 1, 2]
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]
        wn = run.layer_stat("weight_norm")
        assert np.isfinite(wn.values).all()
        assert np.isnan(run.layer_stat("update_norm").values).all()   # no optimizer: no update
        assert "sys/lr" not in run.scalar_names()
        assert run.histograms("weight").steps.size == 0


# False: the code path used on a GPU; "spread": ... for a model over several devices (per-tensor
# counts gathered on the first device)
@pytest.mark.parametrize("cpu_fast_path", [True, False, "spread"])
def test_gradient_statistics_with_nonfinite_and_missing_grads(tmp_path, cpu_fast_path, host_path):
    path = tmp_path / "run.h5"
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        rec._instruments.cpu_fast_path = cpu_fast_path is True
        if cpu_fast_path == "spread":
            rec._instruments.w.one_device = False
        model(torch.randn(3, 4)).sum().backward()
        expect = [torch.linalg.vector_norm(p.grad).item() for p in model.parameters()]
        opt.step()
        model[0].weight.grad[0, :3] = float("nan")
        model[1].bias.grad[1] = float("inf")
        opt.step()
        model[0].bias.grad = None       # a parameter without gradient
        model[0].weight.grad = torch.ones(3, 4)
        model[1].bias.grad[1] = 0.0
        opt.step()
    with open_run(path) as run:
        norms = run.layer_stat("grad_norm").values
        np.testing.assert_allclose(norms[0], expect, rtol=1e-5)
        assert np.isnan(norms[1, 0]) and np.isinf(norms[1, 3]) and np.isfinite(norms[1, [1, 2]]).all()
        assert np.isnan(norms[2, 1]) and norms[2, 0] == pytest.approx(np.sqrt(12))
        assert run.layer_stat("grad_nonfinite").values.tolist() == [[0, 0, 0, 0], [3, 0, 0, 1], [0, 0, 0, 0]]
        assert run.scalar(fmt.SYS_NONFINITE_GRADS).values.tolist() == [0.0, 4.0, 0.0]
        total = run.scalar(fmt.SYS_GRAD_NORM).values
        assert total[0] == pytest.approx(np.linalg.norm(expect), rel=1e-5) and math.isnan(total[1])
        assert total[2] == pytest.approx(np.sqrt(np.nansum(norms[2].astype(np.float64) ** 2)), rel=1e-5)


def test_sync_free_nonfinite_count_matches_direct_count():
    from trainspect.recorder.device_stats import NonfiniteCounter, norms
    g = [torch.randn(5, 7), torch.randn(3), torch.randn(4, 4, dtype=torch.float64)]
    g[0][1, 2:5] = float("nan")
    g[2][0, 0] = -float("inf")
    found = norms(g)
    assert NonfiniteCounter()(g).tolist() == [3.0, 0.0, 1.0]   # the GPU code path, run on CPU
    assert [math.isfinite(float(n)) for n in found] == [False, True, False]


def _planted_tensors(seed, n=40):
    """Tensors of assorted sizes (empty ones too), dtypes and layouts with NaN/Inf planted at
    random, and their non-finite counts as torch.isfinite gives them."""
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for i in range(n):
        shape = [int(s) for s in torch.randint(0, 9, (int(torch.randint(1, 4, (1,), generator=gen)),), generator=gen)]
        dtype = (torch.float32, torch.bfloat16, torch.float16, torch.float64)[i % 4 if seed % 2 else 0]
        t = torch.randn(shape, generator=gen).to(dtype)
        if t.dim() == 2 and i % 3 == 0:
            t = t.t()                                    # not contiguous
        flat = t.view(-1) if t.is_contiguous() else None
        if flat is not None and flat.numel():
            picks = torch.randint(0, flat.numel(), (int(torch.randint(0, 4, (1,), generator=gen)),), generator=gen)
            flat[picks] = torch.tensor([math.nan, math.inf, -math.inf])[picks % 3].to(dtype)
        tensors.append(t)
    return tensors, [float((~torch.isfinite(t)).sum()) for t in tensors]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [None, 50, 1])   # 1: every tensor beyond the chunk size
def test_nonfinite_counter_counts_every_tensor_exactly(monkeypatch, seed, chunk):
    """The GPU path's counts (concatenated, a running sum) are exact for every tensor: empty,
    non-contiguous, mixed dtypes, chunked, single tensors beyond a chunk; the plan kept from
    one step serves the next with other values, and other sizes get a plan of their own."""
    from trainspect.recorder import device_stats
    if chunk is not None:
        monkeypatch.setattr(device_stats, "NONFINITE_CHUNK", chunk)
    counter = device_stats.NonfiniteCounter()
    for step in range(3):
        tensors, expect = _planted_tensors(seed * 10 + step, n=40 - step * (step == 2))
        counts = counter(tensors)
        assert counts.dtype == torch.float32 and counts.shape == (len(tensors),)
        assert counts.tolist() == expect
    assert counter(tensors[:1] * 1).tolist() == expect[:1]
    assert [float(c) for c in device_stats.nonfinite_per_tensor(tensors)] == expect   # the per-tensor path agrees


def _histc_reference(t):
    """The per-tensor histogram the fused one replaces: torch.histc of (x - min) / (max - min)."""
    if t is None or t.numel() == 0:
        return torch.zeros(64), torch.full((2,), float("nan"))
    x = t.reshape(-1).float()
    lo, hi = torch.aminmax(x)
    y = (x - lo) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.histc(y, bins=64, min=0.0, max=1.0), torch.stack([lo, hi])


def _histograms(path, tensors):
    from trainspect.recorder import host_stats
    from trainspect.recorder.device_stats import fused_histograms
    from trainspect.recorder.host_stats import histograms
    if path == "host-numpy":        # the host path without the C extension
        host_stats._native = None
    if path.startswith("host"):
        counts, ranges = histograms(tensors)
        return torch.from_numpy(counts).long(), torch.from_numpy(ranges).float()
    return fused_histograms(tensors, exact_counts=path == "scatter_add")


@pytest.mark.parametrize("seed", [0, 1, 2])
# scatter_add: the counting of the GPU path; host: the CPU fast path (host_stats.histograms),
# in C where the extension is built, host-numpy: without it
@pytest.mark.parametrize("path", ["bincount", "scatter_add", "host", "host-numpy"])
def test_fused_histograms_match_per_tensor_histc(seed, path, monkeypatch):
    from trainspect.recorder import host_stats
    monkeypatch.setattr(host_stats, "_native", host_stats._native)   # restored after the test
    g = torch.Generator().manual_seed(seed)
    with_nan = torch.randn(50, generator=g)
    with_nan[3] = float("nan")
    with_inf = torch.randn(40, generator=g)
    with_inf[0] = float("inf")
    edges = torch.arange(65, dtype=torch.float32) / 64          # values exactly on the bin edges
    tensors = [torch.randn(300, 7, generator=g), None, torch.full((9,), 2.5), torch.empty(0), edges,
               with_nan, with_inf, torch.randn(33, generator=g, dtype=torch.float64) * 1e3,
               torch.rand(5, 5, generator=g).half(), -with_inf, with_inf * 0 + float("inf"),
               torch.randn(20, generator=g) * 1e-37]      # a range below 64 x the smallest normal float
    # many tensors: the bins of the last ones are offset by 65 x their index (as integers: an
    # offset added to the float bin rounded values near a bin edge into the next bin)
    tensors += [torch.randn(3000, generator=g) for _ in range(60)]
    counts, ranges = _histograms(path, tensors)
    assert counts.shape == (len(tensors), 64) and ranges.shape == (len(tensors), 2)
    for i, t in enumerate(tensors):
        expect_counts, expect_range = _histc_reference(t)
        assert counts[i].tolist() == expect_counts.long().tolist(), i
        torch.testing.assert_close(ranges[i], expect_range.float(), equal_nan=True)
    assert counts[0].sum() == 2100 and counts[2].tolist() == [9] + [0] * 63   # a constant: all in bin 0


def test_layout_freezes_at_watch(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "a.h5") as rec:
        rec.watch(model, opt)
        with pytest.warns(RecorderWarning, match="ignored"):
            rec.watch(torch.nn.Linear(2, 2))
        extra = torch.nn.Parameter(torch.zeros(2))
        opt.add_param_group({"params": [extra]})
        extra.grad = torch.ones(2)
        model(torch.randn(2, 3)).sum().backward()
        with pytest.warns(RecorderWarning, match="added after watch"):
            opt.step()
    with Recorder(tmp_path / "b.h5") as rec:   # data already on disk without a model
        rec.log({"a": 1.0})
        rec.flush()
        with pytest.warns(RecorderWarning, match="ignored"):
            rec.watch(model, opt)


def test_flush_is_a_barrier(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)      # no heartbeat in between
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rec.watch(model, opt)
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        for k in range(1, 4):
            for step in range(100):
                rec.log({"v": float(step)})
            model(torch.randn(2, 3)).sum().backward()
            opt.step()
            assert rec.flush()
            tag_ds, names_ds, grad_steps = f[fmt.SCALAR_TAG], f[fmt.TAG_NAMES], f[f"{fmt.GRADS}/step"]
            for ds in (tag_ds, names_ds, grad_steps):
                ds.refresh()
            v_tag = fmt.decode_names(names_ds[:]).index("v")
            assert (tag_ds[:] == v_tag).sum() == 100 * k
            assert grad_steps.shape == (k,)
    rec.close()


def test_close_is_idempotent_and_sets_status(tmp_path):
    rec = Recorder(tmp_path / "a.h5")
    rec.log({"a": 1.0})
    rec.close()
    rec.close()
    with pytest.warns(RecorderWarning, match="after close"):
        rec.log({"a": 2.0})    # after close: ignored, no crash
    with open_run(tmp_path / "a.h5") as run:
        assert run.status().state == "finished"
        assert run.scalar("a").values.tolist() == [1.0]
    with pytest.raises(RuntimeError, match="boom"):
        with Recorder(tmp_path / "b.h5") as rec:
            rec.log({"a": 1.0})
            raise RuntimeError("boom")
    with open_run(tmp_path / "b.h5") as run:
        assert run.status().state == "crashed"
        assert run.scalar("a").values.tolist() == [1.0]


def test_queue_full_drops_and_counts(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600, max_pending=10)
    with pytest.warns(RecorderWarning, match="dropped"):
        for i in range(1000):
            rec.log({"a": float(i)})
    rec.close()
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        written = f[fmt.SCALAR_VALUE].shape[0]
        dropped = int(f[fmt.STATE][fmt.STATE_DROPPED])
    assert dropped > 0 and written + dropped == 1000


def test_bad_path_raises_at_construction(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create run file"):
        Recorder(blocker / "run.h5")


def test_nonzero_rank_with_all_ranks_false_is_a_do_nothing_recorder(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    path = tmp_path / "run.h5"
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(path, name="r1", all_ranks=False) as rec:
        assert isinstance(rec, NullRecorder) and not rec.enabled
        rec.watch(model, opt)
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        rec.log({"loss": 1.0})
        assert rec.flush()
    assert not path.exists() and not (tmp_path / "run.rank1.h5").exists()
    monkeypatch.setenv("RANK", "0")
    with Recorder(path, all_ranks=False) as rec:
        assert not isinstance(rec, NullRecorder)
    assert path.exists()


@pytest.mark.parametrize("ending, status", [("", "finished"), ("raise SystemExit('x') from None", "finished"),
                                            ("1 / 0", "crashed")])
def test_recorder_left_open_is_closed_at_interpreter_exit(tmp_path, ending, status):
    path = tmp_path / "run.h5"
    code = ("import sys; from recorder import Recorder\n"
            "rec = Recorder(sys.argv[1], flush_every=3600)\n"
            "for i in range(1000): rec.log({'loss': 1.0 / (i + 1)}, step=i)\n" + ending)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == (1 if ending else 0), proc.stderr
    with open_run(path) as run:
        assert run.status().state == status
        assert run.scalar("loss").steps.tolist() == list(range(1000))


WRITER_FAILS = textwrap.dedent("""
    import resource, signal, sys, time, warnings
    import torch
    torch.set_num_threads(1)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit would fail with EFBIG
    from trainspect.recorder import Recorder
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, hard))   # a "disk" that fills up
    model = torch.nn.Linear(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = Recorder(sys.argv[1], flush_every=0.02)
        rec.watch(model, opt)
        for step in range(3000):
            loss = model(torch.randn(4, 16)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            rec.log({"loss": loss, **{f"m{i}": float(i) for i in range(60)}})
            if step % 100 == 0:
                time.sleep(0.03)
        flushed = rec.flush()
        rec.close()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    msgs = [str(w.message) for w in caught]
    print("steps", step + 1, "flushed", flushed, "enabled", rec.enabled)
    print("warnings", len(msgs))
    for m in msgs:
        print("W", m)
""")


def test_writer_failure_warns_once_and_training_continues(tmp_path):
    path = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-c", WRITER_FAILS, str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "steps 3000 flushed False enabled False" in out, out
    assert "warnings 1" in out, out
    assert "recording to" in out and "stopped" in out and "file size limit" in out, out
    with open_run(path) as run:      # what was written before the limit is intact
        st = run.status()
        assert st.state == "recording stopped" and "file size limit" in st.error
        loss = run.scalar("loss")
        assert len(loss.values) > 100
        assert loss.steps.tolist() == list(range(len(loss.steps)))   # logged after each step


def test_default_step_lines_up_with_the_optimizer_step_of_the_iteration(tmp_path):
    """log() without step=, called after optimizer.step(), lands on that step's gradient records."""
    import torch

    from trainspect.analysis import open_run

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    path = tmp_path / "steps.h5"
    with Recorder(path, flush_every=0.1) as rec:
        rec.watch(model, opt)
        x, y = torch.randn(16, 4), torch.randn(16, 1)
        for i in range(6):
            loss = torch.nn.functional.mse_loss(model(x), y)
            rec.log({"before/loss": loss.detach()})          # logged before backward/step
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():                             # a gradient-free train-mode forward
                acc = (model(x) - y).abs().mean()             # after the step starts no iteration
            rec.log({"train/loss": loss.detach(), "train/acc": acc})   # logged after the step
            model.eval(); model(x); model.train()             # an eval forward changes nothing
    run = open_run(path)
    grad_steps = run.layer_stat("grad_norm").steps.tolist()
    assert grad_steps == list(range(6))
    assert run.scalar("train/loss").steps.tolist() == grad_steps
    assert run.scalar("train/acc").steps.tolist() == grad_steps
    assert run.scalar("before/loss").steps.tolist() == grad_steps


def test_a_new_instrument_is_one_spec_class_and_one_registry_line(tmp_path, monkeypatch):
    """The extension point of recorder/records/: a spec class (its schedule, device compute and
    writer unpack) plus its entry in the registry; nothing else of the recorder changes."""
    from trainspect.recorder import instruments
    from trainspect.recorder.records import registry
    from trainspect.recorder.records.scalar import ScalarValues

    class LargestGradient(ScalarValues):          # the one new file's class
        schedule = "stats_every"

        def __init__(self, watched, every=1):
            super().__init__(watched, every)
            self.tag = watched.link.tag("grad/largest_abs")

        def before_step(self, step, wall, closure):
            if self.due(step):
                self.emit(self.compute(), step, wall, self.tag)

        def compute(self):
            return torch.stack([p.grad.abs().max() for p in self.w.params if p.grad is not None]).max()

    monkeypatch.setattr(instruments, "RECORDS", registry.RECORDS + (LargestGradient,))   # the registry line
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    largest = {}
    with Recorder(tmp_path / "run.h5", stats_every=2, dense_start=0, _device_path=True) as rec:
        rec.watch(model, opt)
        for step in range(5):
            opt.zero_grad()
            model(torch.randn(4, 5)).pow(2).sum().backward()
            largest[step] = max(p.grad.abs().max().item() for p in model.parameters())
            opt.step()
    with open_run(tmp_path / "run.h5") as run:
        s = run.scalar("grad/largest_abs")
        assert s.steps.tolist() == [0, 2, 4]
        np.testing.assert_allclose(s.values, [largest[0], largest[2], largest[4]], rtol=1e-6)
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(5))   # the others unchanged


def test_a_tilde_path_means_the_home_directory(tmp_path, monkeypatch):
    """``Recorder("~/runs/x.h5")`` made a directory named "~" in the working directory."""
    from trainspect.analysis import open_run

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    with Recorder("~/runs/x.h5") as rec:
        rec.log({"loss": 1.0}, step=0)
    assert rec.path == home / "runs" / "x.h5" and rec.path.exists()
    assert not (work / "~").exists()
    with open_run("~/runs/x.h5") as run:
        assert run.scalar("loss").values.tolist() == [1.0]


def test_a_folder_or_a_bare_name_gets_a_run_file_the_app_lists(tmp_path, capsys):
    """TensorBoard's habit, ``Recorder("runs/exp1")`` or a folder: the file was ``runs/exp1``
    (no suffix) or the folder's name with ``-2``, which ``trainspect info runs/`` did not list."""
    from trainspect.app.cli import main

    (tmp_path / "runs").mkdir()
    made = []
    for path, name in [(tmp_path / "runs", None), (tmp_path / "runs", "exp 1"), (f"{tmp_path}/new/", None),
                       (tmp_path / "runs" / "bare", None), (tmp_path / "runs" / "kept.hdf5", None)]:
        with Recorder(path, name=name) as rec:
            rec.log({"loss": 1.0}, step=0)
        made.append(rec.path)
    assert made == [tmp_path / "runs" / "run.h5", tmp_path / "runs" / "exp_1.h5", tmp_path / "new" / "run.h5",
                    tmp_path / "runs" / "bare.h5", tmp_path / "runs" / "kept.hdf5"]
    assert main(["info", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert all(f"({p})" in out for p in made[:2] + made[3:4])
