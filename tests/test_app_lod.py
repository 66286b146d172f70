"""Level-of-detail and smoothing helpers of the app (pure numpy)."""
import numpy as np
import pytest

from trainspect.app.lod import Envelope, RowPooler, ema, finite_levels, log_levels, minmax_envelope, pool_rows, rebin_histograms


def ema_reference(x, a):
    out, biased, n = [], 0.0, 0
    for v in x:
        if not np.isfinite(v):
            out.append(np.nan)
            continue
        biased = a * biased + (1 - a) * v
        n += 1
        out.append(biased / (1 - a ** n))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.999])
def test_ema_matches_the_sequential_definition(weight):
    rng = np.random.default_rng(1)
    x = rng.normal(size=30_000).cumsum()
    x[[7, 900]] = [np.nan, np.inf]
    got, _ = ema(x, weight)
    ref = ema_reference(x, weight)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("magnitude", [1e60, 1e300, 1.7e308])
@pytest.mark.parametrize("weight", [0.6, 0.99])
def test_ema_of_a_diverged_runs_huge_values_stays_finite_and_exact(weight, magnitude, recwarn):
    """Blocks scale values by weight**-k (up to e**600): a 1e300 loss overflowed to inf and
    left NaN behind it, with a numpy overflow warning on the console."""
    x = np.random.default_rng(3).normal(size=4000)
    x[[10, 2500]] = [magnitude, -magnitude / 3]
    got, _ = ema(x, weight)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ema_reference(x, weight), rtol=1e-9, atol=1e-9)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_ema_first_value_is_unbiased_and_nan_does_not_poison_the_rest():
    got, _ = ema([5.0, np.nan, 5.0, 5.0], 0.9)
    assert got[0] == pytest.approx(5.0)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[2:], 5.0)


@pytest.mark.parametrize("split", [3, 1234])
def test_ema_continues_across_appended_chunks(split):
    x = np.random.default_rng(2).normal(size=5000)
    whole, _ = ema(x, 0.95)
    a, state = ema(x[:split], 0.95)
    b, _ = ema(x[split:], 0.95, state)
    np.testing.assert_allclose(np.concatenate([a, b]), whole, rtol=1e-12, atol=1e-13)   # values ~1: rounding


@pytest.mark.parametrize("value", [0.5, 1234.5678, -3e-7, 1e12])
@pytest.mark.parametrize("weight", [0.6, 0.95, 0.999])
def test_ema_of_a_constant_is_that_constant_exactly(value, weight):
    """A fixed LR smoothed with a few ulps of noise gave the plot a 1e-15 wide y range (no tick
    labels, a wavy line); across appended chunks (a live run) too."""
    x = np.full(3000, value)
    x[7] = np.nan
    whole, _ = ema(x, weight)
    assert set(whole[np.isfinite(whole)].tolist()) == {value}
    a, state = ema(x[:1000], weight)
    b, _ = ema(x[1000:], weight, state)
    assert set(np.concatenate([a, b])[np.isfinite(whole)].tolist()) == {value}


def test_ema_rejects_bad_weight():
    with pytest.raises(ValueError, match="smoothing weight"):
        ema([1.0, 2.0], 1.0)


def test_pool_rows_keeps_single_row_spike_and_ignores_nan():
    v = np.random.default_rng(3).random((100_003, 5))
    v[54_321, 2] = 1e6
    v[:, 4] = np.nan
    pooled, edges = pool_rows(v, 700)
    assert pooled.shape == (700, 5)
    assert edges[0] == 0 and edges[-1] == len(v)
    assert pooled[:, 2].max() == 1e6
    bucket = np.searchsorted(edges, 54_321, side="right") - 1
    assert pooled[bucket, 2] == 1e6
    assert np.isnan(pooled[:, 4]).all()


def test_pool_columns_is_pool_rows_transposed():
    from trainspect.app.lod import pool_columns

    v = np.random.default_rng(6).normal(size=(5000, 9))
    a, ea = pool_rows(v, 123)
    b, eb = pool_columns(np.ascontiguousarray(v.T), 123)
    np.testing.assert_array_equal(a.T, b)
    np.testing.assert_array_equal(ea, eb)


def test_pool_rows_leaves_short_tables_alone():
    v = np.arange(12.0).reshape(4, 3)
    pooled, edges = pool_rows(v, 10)
    np.testing.assert_array_equal(pooled, v)
    np.testing.assert_array_equal(edges, np.arange(5))


def test_row_pooler_in_chunks_equals_pooling_in_one_go():
    v = np.random.default_rng(4).normal(size=(50_000, 7))
    v[123, 1] = 99.0
    v[:100, 6] = np.nan
    ref, _ = pool_rows(v, 333)
    pooler = RowPooler(len(v), 7, 333)
    for a in range(0, len(v), 4096):       # chunk size unrelated to bucket size
        pooler.add(a, v[a:a + 4096])
    np.testing.assert_array_equal(pooler.result(), ref)


def test_minmax_envelope_preserves_extremes():
    x = np.arange(10_000_000, dtype=np.float64)
    y = np.zeros_like(x)
    y[7_654_321] = 42.0
    y[1_000] = -3.0
    xs, ys = minmax_envelope(x, y, 1000)
    assert len(xs) == 2000
    assert ys.max() == 42.0 and ys.min() == -3.0


def test_rebin_histograms_conserves_counts_on_a_common_grid():
    counts = np.array([[0, 10, 0, 0], [5, 5, 5, 5]])
    ranges = np.array([[0.0, 1.0], [-2.0, 2.0]])
    img, lo, hi = rebin_histograms(counts, ranges, n_bins=8)
    assert (lo, hi) == (-2.0, 2.0)
    np.testing.assert_allclose(img.sum(axis=1), [10, 20])
    # the first row's mass lies in [0.25, 0.5]: grid bin [0, 0.5) holds it
    assert img[0, 4] == pytest.approx(10)


def test_log_levels_only_when_positive_and_wide():
    wide = np.array([[1e-6, 1e-2], [1.0, 10.0]])
    disp, is_log = log_levels(wide)
    assert is_log and disp[0, 0] == pytest.approx(-6)
    assert log_levels(np.array([[0.2, 0.5]]))[1] is False
    assert log_levels(np.array([[-1.0, 100.0, 1e-3]]))[1] is False
    assert finite_levels(np.array([np.nan, -2.0, 1.0, np.inf]), symmetric=True) == (-2.0, 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_envelope_marks_every_nonfinite_value_at_every_size(seed):
    """A NaN or Inf cannot be drawn as a point: the envelope keeps where they are, per bucket,
    through merges, so the plot can band them (Envelope.nonfinite)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20_000, 60_000))
    v = rng.normal(size=n)
    bad = np.unique(np.concatenate([rng.integers(0, n, 5), np.arange(1000, 1040)]))
    v[bad] = rng.choice([np.nan, np.inf, -np.inf], size=bad.size)
    steps = np.arange(n) * 3
    env = Envelope(0.6, capacity=int(rng.choice([64, 512, 4096])))
    chunk = int(rng.integers(500, 9000))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        env.extend(np.arange(a, b), steps[a:b], steps[a:b] / 10, v[a:b])
    spans = env.nonfinite(max_spans=1000)
    assert int(env.cols["nb"][: env.m].sum()) == bad.size
    for s in steps[bad]:      # every one inside a span...
        assert any(x0 <= s <= x1 for x0, x1 in spans), s
    for x0, x1 in spans:      # ...and every span starts and ends at one
        assert x0 in steps[bad] and x1 in steps[bad]
    assert len(env.nonfinite(max_spans=3)) <= 3
    assert env.nonfinite(axis="w")[0][0] == steps[bad][0] / 10
    exact = Envelope(0.0)
    exact.extend(np.arange(n), steps, steps / 10, v)
    runs = np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1)
    assert exact.nonfinite(max_spans=1000) == [(steps[r[0]], steps[r[-1]]) for r in runs]
    assert Envelope(0.6).nonfinite() == []
