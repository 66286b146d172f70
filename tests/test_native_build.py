"""The optional C extension (recorder/_native.c) is built wherever a C compiler is, and its
statistics equal the numpy code path's on data large enough to cross its block boundaries."""
from __future__ import annotations

import math
import shutil
import sysconfig

import numpy as np
import pytest
import torch

from trainspect.recorder import host_stats


def test_the_extension_is_built_where_a_compiler_is():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the numpy code path is used")
    assert host_stats._native is not None, "a C compiler is here but trainspect.recorder._native was not built"


def _both(fn, monkeypatch, *args):
    if host_stats._native is None:
        pytest.skip("the C extension is not built")
    native = fn(*args)
    monkeypatch.setattr(host_stats, "_native", None)
    numpy = fn(*args)
    monkeypatch.undo()
    return native, numpy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_histograms_equal_the_numpy_path(seed, monkeypatch):
    g = torch.Generator().manual_seed(seed)
    big = torch.randn(1 << 20 | 37, generator=g) * 3     # many blocks, and a tail
    skewed = torch.rand(70_001, generator=g) ** 8           # most values in the first bins
    tensors = [big, skewed, torch.randn(300, 200, generator=g).t(), torch.randn(7, generator=g)]
    (c1, r1), (c2, r2) = _both(host_stats.histograms, monkeypatch, tensors)
    assert np.array_equal(c1, c2) and np.array_equal(r1, r2)
    assert c1.sum(axis=1).tolist() == [t.numel() for t in tensors]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape,bounds", [((256, 4096), None), ((8, 64, 33, 17), None),
                                          ((4, 1000, 96), (0.0, 1.0)), ((3001,), (-1.0, 1.0))])
def test_large_activation_rows_equal_the_numpy_path(seed, shape, bounds, monkeypatch):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    if bounds is not None:
        x = torch.sigmoid(x) if bounds[0] == 0 else torch.tanh(x)
    else:
        x = torch.relu(x)
        x[:, : shape[1] // 5] = 0.0        # dead units
    native, numpy = _both(host_stats.activation_row, monkeypatch, x, bounds)
    np.testing.assert_allclose(native[:3], numpy[:3], rtol=1e-5)
    assert native[3:] == numpy[3:]          # counts: exact


def test_a_large_mean_takes_the_centred_pass(monkeypatch):
    """1e4 + noise: E[x^2] - mean^2 would cancel to nothing in float32 lanes."""
    g = torch.Generator().manual_seed(0)
    x = 1e4 + torch.randn(50_000, generator=g)
    native, numpy = _both(host_stats.input_row, monkeypatch, x)
    expect = x.double().std(unbiased=False).item()
    assert native[1] == pytest.approx(expect, rel=1e-4) and numpy[1] == pytest.approx(expect, rel=1e-4)


def test_an_extension_built_from_other_sources_is_not_used(monkeypatch):
    """An editable install not rebuilt after an update keeps an old _native*.so: its functions
    may take other arguments, so the numpy path is used, with a warning that says what to do."""
    import types

    import trainspect.recorder as package
    stale = types.ModuleType("trainspect.recorder._native")
    stale.INTERFACE_VERSION = host_stats.NATIVE_INTERFACE - 1
    monkeypatch.setattr(package, "_native", stale, raising=False)
    with pytest.warns(RuntimeWarning, match="rebuilt"):
        assert host_stats._load_native() is None
    del stale.INTERFACE_VERSION                    # older still: built before the version existed
    with pytest.warns(RuntimeWarning, match="pip install -e"):
        assert host_stats._load_native() is None
    monkeypatch.undo()
    if host_stats._native is not None:             # the real one loads
        assert host_stats._load_native() is host_stats._native


def test_infinite_and_constant_tensors_give_the_numpy_paths_ranges_and_bins(monkeypatch):
    """A tensor of +inf alone has the range (inf, inf), as numpy's minimum says (a start value
    of the largest float would have stayed its minimum), and takes the constant rule."""
    tensors = [torch.full((9,), float("inf")), torch.full((5,), -float("inf")),
               torch.tensor([float("inf"), -float("inf")]), torch.tensor([3e38, -3e38, 1.0]),
               torch.full((4,), float("nan")), torch.full((1,), 2.0), torch.tensor([1.0, float("inf")])]
    (c1, r1), (c2, r2) = _both(host_stats.histograms, monkeypatch, tensors)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(c1, c2)
    assert r1[0].tolist() == [math.inf, math.inf] and r1[1].tolist() == [-math.inf, -math.inf]
    for x in (tensors[0], tensors[1], tensors[3]):
        native, numpy = _both(host_stats.input_row, monkeypatch, x)
        assert native[2:] == numpy[2:]                      # min and max


def test_constants_missing_and_empty_tensors_bin_as_the_numpy_path(monkeypatch):
    """Zero biases and unit norm weights (constants) are binned in C, all in bin 0; missing
    gradients (None) and empty tensors keep zero counts and a NaN range."""
    tensors = [torch.zeros(1 << 20 | 5), torch.ones(64), None, torch.empty(0), torch.full((3, 3), -2.5),
               torch.randn(100, generator=torch.Generator().manual_seed(0))]
    (c1, r1), (c2, r2) = _both(host_stats.histograms, monkeypatch, tensors)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(r1, r2)
    assert c1[0, 0] == (1 << 20 | 5) and c1[4, 0] == 9 and c1[:5, 1:].sum() == 0
    assert c1[2].sum() == 0 and np.isnan(r1[2]).all() and c1[3].sum() == 0 and np.isnan(r1[3]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_copy_and_update_norms_equal_the_torch_path(seed, monkeypatch):
    """The copy before a step is one C call (gather); the update norms read from it equal
    those of a torch copy, for contiguous, transposed and half-precision parameters."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(300, 70, generator=g)),
              torch.nn.Parameter(torch.randn(40, 30, generator=g).t()),
              torch.nn.Parameter(torch.randn(513, generator=g).half()),
              torch.nn.Parameter(torch.zeros(0))]

    originals = [p.detach().clone() for p in params]

    def copy_step_norms():
        copy = host_stats.WeightCopy()
        views = copy.take(params)
        before = [v.clone() for v in views]
        with torch.no_grad():
            for p in params:
                p.add_(0.01)
        rows = (host_stats.weight_norms(params, copy.addrs) if host_stats._native is not None
                else None)
        with torch.no_grad():
            for p, o in zip(params, originals):
                p.copy_(o)
        return before, rows

    if host_stats._native is None:
        pytest.skip("the C extension is not built")
    before, rows = copy_step_norms()
    for v, o in zip(before, originals):
        assert torch.equal(v, o.float())
    P = len(params)
    stepped = [o.add(0.01).float() for o in originals]     # as add_ left them, widened
    expect_w = [s.double().norm().item() for s in stepped]
    np.testing.assert_allclose(np.asarray(rows[:P]), np.float32(expect_w), rtol=1e-5)
    expect_u = [(s.double() - o.double()).norm().item() for s, o in zip(stepped, originals)]
    np.testing.assert_allclose(np.asarray(rows[P:2 * P]), np.float32(expect_u), rtol=1e-5)
    monkeypatch.setattr(host_stats, "_native", None)
    numpy_before, _ = copy_step_norms()
    for a, b in zip(before, numpy_before):
        assert torch.equal(a, b)
