"""The CPU fast path of the statistics (recorder/host_stats.py) gives the device path's values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.device_stats import activation_raw, activation_rows, output_tensor
from trainspect.recorder.host_stats import activation_row

ACT_STATS = ("act_mean", "act_std", "act_absmax", "act_frac_nonpos", "act_dead_frac", "act_frac_saturated")


def activation_cases(seed):
    """(name, output, bounds): every branch of the statistics, values on the thresholds included."""
    g = torch.Generator().manual_seed(seed)
    relu = torch.relu(torch.randn(64, 256, generator=g))
    relu[:, :7] = 0.0                                       # dead units
    wide = torch.randn(16, 32, 64, generator=g) * 4         # |x| > 5 present
    wide[0, 0, :3] = torch.tensor([5.0, -5.0, 5.0001])      # on the threshold: not saturated
    sig = torch.sigmoid(torch.randn(50, 20, generator=g) * 6)
    sig[0, :2] = torch.tensor([0.01, 0.99])                 # on the band edges (float32)
    tanh = torch.tanh(torch.randn(8, 4, 9, generator=g))    # inside the band: no saturated element
    with_nan = torch.randn(30, 10, generator=g)
    with_nan[2, 3] = float("nan")
    with_inf = torch.randn(30, 10, generator=g)
    with_inf[1, 1], with_inf[4, 2] = float("inf"), float("-inf")
    negative = -torch.rand(12, 5, generator=g)              # max <= 0: every element counts
    positive = torch.rand(12, 5, generator=g) + 0.5         # min > 0: no element counts
    return [
        ("relu", relu, None), ("3d", wide, None), ("sigmoid", sig, (0.0, 1.0)), ("tanh", tanh, (-1.0, 1.0)),
        ("hardtanh", torch.randn(40, 6, generator=g) * 3, (-2.0, 2.0)),
        ("nan", with_nan, None), ("inf", with_inf, None), ("negative", negative, None),
        ("positive", positive, None), ("vector", torch.randn(17, generator=g), None),
        ("scalar", torch.tensor(-0.5), None), ("conv", torch.randn(4, 3, 5, 5, generator=g), None),
        ("half", torch.randn(20, 8, generator=g).half(), (-1.0, 1.0)),
        ("strided", torch.randn(32, 16, generator=g).t(), None),
        ("tuple", (torch.randn(6, 4, generator=g), torch.zeros(2)), None),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_host_activation_rows_equal_the_device_rows(seed, host_path):
    for name, output, bounds in activation_cases(seed):
        x = output_tensor(output)
        device = activation_rows([activation_raw(x, bounds)])[0]
        host = torch.tensor(activation_row(x, bounds), dtype=torch.float32)
        torch.testing.assert_close(host, device, rtol=1e-5, atol=1e-7, equal_nan=True, msg=name)


def reference_row(x, bounds):
    """ACT_FIELDS of ``x`` straight from their definitions, in float64."""
    y = x.double().numpy()
    finite = np.isfinite(y).all()
    with np.errstate(all="ignore"):
        if y.ndim == 0:
            dead = math.nan
        else:
            unit = y.ndim - 1 if y.ndim == 3 else (0 if y.ndim == 1 else 1)
            per_unit = np.moveaxis(y, unit, 0).reshape(y.shape[unit], -1).max(axis=1)
            dead = (per_unit <= 0).mean()
        if bounds is None:
            sat = (np.abs(y) > 5).mean()
        else:
            band = 0.01 * (bounds[1] - bounds[0])
            low, high = np.float32(bounds[0] + band), np.float32(bounds[1] - band)
            sat = ((y <= low) | (y >= high)).mean()
        return [y.mean(), y.std() if finite else math.nan, np.abs(y).max(), (y <= 0).mean(), dead, sat]


def reference_cases(seed):
    """Outputs that take every branch of the host statistics: a mean small or large against
    the spread (one pass or centred), ranges that imply the counts, a dot that overflows."""
    g = torch.Generator().manual_seed(seed)
    relu = torch.relu(torch.randn(16, 32, 256, generator=g) + 0.3)
    relu[:, :, :9] = 0.0                                            # dead units
    return [
        ("relu 3d", relu, None),
        ("offset 1e4", 1e4 + torch.randn(64, 256, generator=g), None),       # mean^2 >> variance
        ("offset -300", -300 + 0.01 * torch.randn(40, 30, generator=g), None),
        ("sigmoid", torch.sigmoid(torch.randn(64, 100, generator=g) + 2), (0.0, 1.0)),
        ("mean ~ std", torch.randn(128, 64, generator=g) + 1.0, None),
        ("conv", torch.randn(8, 6, 5, 5, generator=g) - 1.5, None),
        ("conv all > 0", torch.rand(4, 3, 5, 5, generator=g) + 1e-3, None),
        ("all <= 0", -torch.rand(10, 7, generator=g), None),
        ("beyond -5 only", torch.randn(50, 20, generator=g) * 3 - 4, None),
        ("beyond +5 only", torch.randn(50, 20, generator=g) * 3 + 4, None),
        ("huge", 1e19 * (1 + 1e-3 * torch.randn(30, 10, generator=g)), None),   # x^2 overflows float32
        ("vector", torch.randn(33, generator=g), None),
        ("scalar", torch.tensor(0.25), None),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_host_activation_rows_equal_a_float64_reference(seed, host_path):
    for name, output, bounds in reference_cases(seed):
        x = output_tensor(output)
        got, expect = activation_row(x, bounds), reference_row(x, bounds)
        np.testing.assert_allclose(got[:3], expect[:3], rtol=2e-5, atol=1e-6, err_msg=name)
        assert got[3:] == pytest.approx(expect[3:], abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_host_input_row_equals_the_device_stats_and_a_float64_reference(seed, host_path):
    from trainspect.recorder.device_stats import input_stats
    from trainspect.recorder.host_stats import input_row
    g = torch.Generator().manual_seed(seed)
    with_nan = torch.randn(8, 5, generator=g)
    with_nan[3, 1] = float("nan")
    for x in (torch.randn(64, 128, generator=g), 1e4 + torch.randn(32, 3, 8, 8, generator=g),
              torch.rand(100, generator=g).double(), torch.randn(16, 40, generator=g).half().t(), with_nan):
        y = x.double().numpy()
        expect = [y.mean(), y.std(), y.min(), y.max()]
        np.testing.assert_allclose(input_row(x), expect, rtol=2e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(input_row(x), dtype=torch.float32), input_stats(x),
                                   rtol=2e-5, atol=1e-6, equal_nan=True)


def test_host_activation_counts_match_a_direct_count(host_path):
    x = torch.tensor([[-6.0, 0.0, 1.0], [-5.5, float("nan"), 7.0]])
    mean, std, absmax, nonpos, dead, sat = activation_row(x, None)
    assert math.isnan(mean) and math.isnan(std) and math.isnan(absmax)
    assert nonpos == 3 / 6 and sat == 3 / 6          # NaN is neither <= 0 nor beyond 5
    assert dead == 1 / 3                             # unit 0 (max -6); unit 1's max is NaN


class InplaceNet(torch.nn.Module):
    """Linear -> ReLU(inplace=True): the ReLU rewrites the Linear's output after its hook ran."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 16)
        self.act = torch.nn.ReLU(inplace=True)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.act(self.fc(x)))


def record_inplace_net(path, seed, device_path):
    torch.manual_seed(seed)
    model = InplaceNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    captured = []
    model.fc.register_forward_hook(lambda m, a, out: captured.append(out.detach().clone()))
    with Recorder(path, stats_every=1, dense_start=0, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            x = torch.randn(32, 8)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with open_run(path) as run:
        return captured, {name: run.layer_stat(name).values for name in ACT_STATS}


@pytest.mark.parametrize("seed", [0, 1])
def test_inplace_activation_recorded_before_it_is_overwritten(tmp_path, seed):
    captured, host = record_inplace_net(tmp_path / "host.h5", seed, device_path=False)
    _, device = record_inplace_net(tmp_path / "device.h5", seed, device_path=True)
    for name in ACT_STATS:
        np.testing.assert_allclose(host[name], device[name], rtol=1e-5, atol=1e-7, err_msg=name)
    for step, y in enumerate(captured):   # module 0 (fc): its own output, negatives included
        y = y.numpy().astype(np.float64)
        expect = [y.mean(), y.std(), np.abs(y).max(), (y <= 0).mean(), (y.max(axis=0) <= 0).mean(),
                  (np.abs(y) > 5).mean()]
        np.testing.assert_allclose([host[name][step, 0] for name in ACT_STATS], expect, rtol=1e-4, atol=1e-6)
        assert host["act_frac_nonpos"][step, 0] > 0.2


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])
@pytest.mark.parametrize("clip_every", [0, 2])   # 0: never clipped; 2: every other step
def test_applied_grad_norm_is_the_backward_norm_unless_the_gradients_changed(tmp_path, device_path, clip_every):
    from trainspect.recorder import format as fmt
    torch.manual_seed(clip_every)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    applied = []
    with Recorder(tmp_path / "run.h5", _device_path=device_path) as rec:
        rec.watch(model, opt)
        for step in range(6):
            loss = model(torch.randn(16, 6)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            if clip_every and step % clip_every == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
            applied.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item())
            opt.step()
    with open_run(tmp_path / "run.h5") as run:
        pre = run.scalar(fmt.SYS_GRAD_NORM)
        if not clip_every:      # never clipped: no post-clip metric (tests/test_recorder_post_clip.py)
            assert fmt.SYS_GRAD_NORM_POST_CLIP not in run.scalar_names()
            np.testing.assert_allclose(pre.values, applied, rtol=1e-5)
            return
        post = run.scalar(fmt.SYS_GRAD_NORM_POST_CLIP)
        assert post.steps.tolist() == list(range(6))
        np.testing.assert_allclose(post.values, applied, rtol=1e-5)
        clipped = [bool(clip_every) and s % clip_every == 0 for s in range(6)]
        for s in range(6):
            assert (post.values[s] < pre.values[s]) == clipped[s]


@pytest.mark.parametrize("stats_every", [1, 3])
def test_leaf_hooks_stay_only_while_consecutive_steps_are_due(tmp_path, stats_every):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    hooked = []
    with Recorder(tmp_path / "run.h5", stats_every=stats_every, dense_start=0) as rec:
        rec.watch(model, opt)
        for _ in range(7):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            hooked.append(len(model[1]._forward_hooks))
            model.eval()
            with torch.no_grad():
                model(torch.randn(3, 4))       # an evaluation forward: never recorded
            model.train()
    assert hooked == ([1] * 7 if stats_every == 1 else [0] * 7)
    assert len(model[1]._forward_hooks) == 0       # closed: every hook removed
    with open_run(tmp_path / "run.h5") as run:
        acts = run.layer_stat("act_frac_nonpos")
        assert acts.steps.tolist() == list(range(0, 7, stats_every))
        assert np.isfinite(acts.values).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_snapshots_are_the_adaptive_average_pooling_of_the_weights(seed, host_path):
    """torch's pooling (the device path) and, on the CPU fast path, the C extension's."""
    import torch.nn.functional as F

    from trainspect.recorder.device_stats import snapshot
    from trainspect.recorder.host_stats import snapshots
    g = torch.Generator().manual_seed(seed)
    shapes = [(256, 128), (96, 64), (8, 96), (10, 256), (100, 70), (33, 5), (64, 3, 3, 3), (32, 32), (2048, 65)]
    weights = [torch.randn(shape, generator=g) for shape in shapes]
    weights[1] = weights[1].t().contiguous().t()                  # a transposed (strided) matrix
    pooled = snapshots(weights)                                   # None without the C extension
    assert (pooled is None) == (host_path == "numpy")
    for k, w in enumerate(weights):
        rows, cols = min(w.shape[0], 32), min(w[0].numel(), 32)
        expect = F.adaptive_avg_pool2d(w.reshape(w.shape[0], -1)[None, None], (rows, cols))[0, 0]
        for got in [snapshot(w)] + ([] if pooled is None else [torch.from_numpy(pooled[k])]):
            assert got.shape == (32, 32)
            torch.testing.assert_close(got[:rows, :cols], expect, rtol=1e-5, atol=1e-6, msg=str(w.shape))
            assert got[rows:].isnan().all() and got[:, cols:].isnan().all()


class PassThroughNet(torch.nn.Module):
    """Leaves that return their input: Dropout(p=0) after a Linear (reused), Identity after a
    Sigmoid (other bounds: computed again), Dropout(p=0) after an in-place ReLU (changed since)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 12)
        self.drop = torch.nn.Dropout(0.0)
        self.sig = torch.nn.Sigmoid()
        self.same = torch.nn.Identity()
        self.fc2 = torch.nn.Linear(12, 12)
        self.relu = torch.nn.ReLU(inplace=True)
        self.drop2 = torch.nn.Dropout(0.0)

    def forward(self, x):
        h = self.drop(self.fc(x))
        h = self.same(self.sig(h * 8)) * 4 - 2
        y = self.fc2(h)
        return self.drop2(self.relu(y)) + 0


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_leaf_returning_an_earlier_output_gets_its_statistics(tmp_path, device_path, seed):
    torch.manual_seed(seed)
    model = PassThroughNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    outputs = {}
    for name in ("fc", "sig", "fc2"):
        getattr(model, name).register_forward_hook(lambda m, a, out, name=name: outputs.setdefault(name, []).append(
            out.detach().clone()))
    with Recorder(tmp_path / "run.h5", stats_every=1, dense_start=0, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            loss = model(torch.randn(20, 6)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    leaf = {m: i for i, m in enumerate(n for n, mod in model.named_modules() if not list(mod.children()))}
    with open_run(tmp_path / "run.h5") as run:
        got = {name: run.layer_stat(name).values for name in ACT_STATS}

    def row(step, module):
        return np.array([got[name][step, leaf[module]] for name in ACT_STATS])

    def direct(y, bounds=None):
        y = y.numpy().astype(np.float64)
        sat = ((y <= bounds[0] + 0.01) | (y >= bounds[1] - 0.01)).mean() if bounds else (np.abs(y) > 5).mean()
        return [y.mean(), y.std(), np.abs(y).max(), (y <= 0).mean(), (y.max(axis=0) <= 0).mean(), sat]
    for step in range(3):
        np.testing.assert_allclose(row(step, "drop"), row(step, "fc"), rtol=0, atol=0)
        np.testing.assert_allclose(row(step, "drop"), direct(outputs["fc"][step]), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row(step, "sig"), direct(outputs["sig"][step], (0.0, 1.0)), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row(step, "same"), direct(outputs["sig"][step]), rtol=1e-4, atol=1e-6)
        relu = torch.relu(outputs["fc2"][step])
        np.testing.assert_allclose(row(step, "fc2"), direct(outputs["fc2"][step]), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row(step, "drop2"), direct(relu), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("stats_every", [1, 3])
def test_the_weight_copy_is_kept_only_while_consecutive_steps_are_due(tmp_path, stats_every):
    """The CPU fast path reuses one buffer for the weights before each due optimizer step, but
    a copy of every weight is not held through the forward of a step that is not due (the
    update is measured when the next training forward begins: records/weights.py)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "run.h5", stats_every=stats_every, dense_start=0) as rec:
        rec.watch(model, opt)
        weights = next(r for r in rec._instruments.records if type(r).__name__ == "Weights")
        held = []
        for _ in range(6):
            out = model(torch.randn(4, 8))
            held.append(weights._copy.buffer is not None)    # during this step's forward
            out.pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    assert held == [False] + [stats_every == 1] * 5
    with open_run(tmp_path / "run.h5") as run:
        assert run.layer_stat("update_norm").steps.tolist() == list(range(0, 6, stats_every))
        assert np.isfinite(run.layer_stat("update_ratio").values).all()


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_records_with_missing_and_non_finite_gradients(tmp_path, device_path, seed):
    """Per-parameter norms and non-finite counts, and the totals beside them, as torch computes
    them: a parameter without a gradient has norm NaN and count 0 and is left out of the totals;
    planted NaN/Inf elements are counted and make the norms non-finite."""
    from trainspect.recorder import format as fmt

    torch.manual_seed(seed)
    trunk, side = torch.nn.Linear(5, 7), torch.nn.Linear(5, 7)   # side: used on even steps only
    model = torch.nn.ModuleDict({"trunk": trunk, "side": side})
    opt = torch.optim.SGD(model.parameters(), lr=0.0)   # lr 0: the planted values never reach the weights
    expect = []
    with Recorder(tmp_path / "run.h5", _device_path=device_path) as rec:
        rec.watch(model, opt)
        for step in range(6):
            x = torch.randn(9, 5)
            out = trunk(x) + (side(x) if step % 2 == 0 else 0)
            opt.zero_grad(set_to_none=True)
            hooks = []
            if step == 3:   # planted in backward itself: the record is taken when backward ends
                hooks = [trunk.weight.register_hook(lambda g: _planted(g, 2)),
                         trunk.bias.register_hook(lambda g: _planted(g, 1, math.inf))]
            out.pow(2).mean().backward()
            for h in hooks:
                h.remove()
            params = list(model.parameters())
            grads = [p.grad for p in params]
            norms = [math.nan if g is None else torch.linalg.vector_norm(g.double()).item() for g in grads]
            bad = [0 if g is None else int((~torch.isfinite(g)).sum()) for g in grads]
            present = [n for n, g in zip(norms, grads) if g is not None]
            expect.append((norms, bad, math.sqrt(sum(n * n for n in present)), sum(bad)))
            if step == 3:
                opt.zero_grad(set_to_none=True)   # keep the weights finite: no update from this step
            opt.step()
    with open_run(tmp_path / "run.h5") as run:
        gn, gb = run.layer_stat("grad_norm"), run.layer_stat("grad_nonfinite")
        total, total_bad = run.scalar(fmt.SYS_GRAD_NORM), run.scalar(fmt.SYS_NONFINITE_GRADS)
        assert gn.steps.tolist() == total.steps.tolist() == list(range(6))
        for s, (norms, bad, tot, tot_bad) in enumerate(expect):
            np.testing.assert_allclose(gn.values[s], norms, rtol=1e-5, equal_nan=True)
            assert gb.values[s].tolist() == bad
            np.testing.assert_allclose(total.values[s], tot, rtol=1e-5, equal_nan=True)
            assert total_bad.values[s] == tot_bad
        assert np.isnan(gn.values[1][2:]).all() and not np.isnan(gn.values[0]).any()   # side unused on odd steps
        assert gb.values[3][:2].tolist() == [2, 1] and math.isnan(total.values[3])


def _planted(grad, n, value=math.nan):
    """``grad`` with its first ``n`` elements replaced by ``value``."""
    out = grad.clone()
    out.view(-1)[:n] = value
    return out


def test_host_arrays_are_staged_without_torch_and_copied():
    """The CPU fast path stages numpy arrays: each spec gets its own values back on the writer
    side, in the width it asked for, and a caller that reuses its array after staging changes
    nothing already staged."""
    from trainspect.recorder.writer_thread import DeviceStaging

    class Spec:
        def __init__(self, name):
            self.name = name

    staging = DeviceStaging()
    narrow, wide, mixed = Spec("narrow"), Spec("wide"), Spec("mixed")
    rows = np.array([[1.5, -2.0], [3.25, 4.0]], np.float32)
    counts = np.array([2.0 ** 40 + 1, 7.0])          # exact only in float64
    staging.add(rows, narrow, 3, 10.0, "a")
    staging.add(counts, wide, 3, 10.0, "b", wide=True)
    staging.add(np.array([0.1], np.float64), mixed, 4, 11.0, "c")   # float64 values, not wide
    staging.add(torch.tensor([9.0]), narrow, 4, 11.0, "d")          # a tensor beside them
    assert staging.count == 4
    batch = staging.take()
    rows[:] = 0                                      # reused by the caller after staging
    got = {}
    for host, event, placed in batch.parts:
        assert event is None
        values = host if isinstance(host, np.ndarray) else host.numpy()
        for spec, step, wall, arg, off, n in placed:
            got[arg] = (spec.name, step, values[off:off + n].copy(), values.dtype)
    assert got["a"][0] == "narrow" and got["a"][1] == 3
    np.testing.assert_array_equal(got["a"][2], [1.5, -2.0, 3.25, 4.0])
    assert got["b"][3] == np.float64 and got["b"][2].tolist() == [2.0 ** 40 + 1, 7.0]
    assert got["c"][3] == np.float32 and got["c"][2].tolist() == [np.float32(0.1)]
    assert got["d"][2].tolist() == [9.0]
    assert staging.count == 0 and staging.take() is None
    alone = np.array([5.0, 6.0], np.float32)        # one array in its group: still a copy
    staging.add(alone, narrow, 5, 12.0, "e")
    (host, _, _), = staging.take().parts
    alone[:] = -1
    assert host.tolist() == [5.0, 6.0]
