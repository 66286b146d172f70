"""Pure-numpy level-of-detail and smoothing helpers used by the plots.

Nothing here thins data by sampling: reductions keep the extreme value of every bucket, so a
one-step spike survives at every zoom level. No Qt, no file access: tested directly.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- EMA smoothing


def _ema_block_size(a: float) -> int:
    # Inside a block we scale by a**-k; keep a**-B far from float64 overflow (e**700).
    return int(max(1, min(8192, math.floor(600.0 / max(-math.log(a), 1e-12)))))


def _ema_biased(x: np.ndarray, a: float, y0: float) -> np.ndarray:
    """y[n] = a*y[n-1] + (1-a)*x[n] with y[-1] = y0, vectorised in blocks (no per-point loop)."""
    n = x.size
    B = _ema_block_size(a)
    nb = -(-n // B)
    pad = nb * B - n
    xb = np.concatenate([x, np.zeros(pad)]).reshape(nb, B)
    k = np.arange(B, dtype=np.float64)
    up = a ** (-k)                     # a^-k
    down = a ** k                      # a^k
    # Local EMA of each block with zero initial state: a^i * sum_{k<=i} a^-k (1-a) x_k.
    local = np.cumsum(xb * ((1.0 - a) * up), axis=1) * down
    # Carry the state across blocks: short sequential loop over blocks, not points.
    decay = a ** (k + 1)               # effect of the incoming state on position i
    carry = np.empty(nb)
    state = y0
    aB = a ** B
    last = local[:, -1]
    for b in range(nb):
        carry[b] = state
        state = aB * state + last[b]
    y = local + carry[:, None] * decay[None, :]
    return y.reshape(-1)[:n]


def ema(values, weight: float, state: tuple[float, int] | None = None):
    """Debiased exponential moving average (TensorBoard's smoothing) over the full data.

    ``weight`` in [0, 1): 0 = no smoothing. Non-finite values are skipped (the average
    carries over them) and come out as NaN, so a NaN loss shows as a gap, not a poisoned
    curve. ``state`` continues a previous call (for appended live data); returns
    ``(smoothed, new_state)``.
    """
    x = np.asarray(values, dtype=np.float64)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    biased0, count0 = state if state is not None else (0.0, 0)
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    xf = x[finite]
    if xf.size == 0:
        return out, (biased0, count0)
    if weight == 0.0:
        out[finite] = xf
        return out, (float(xf[-1]), count0 + xf.size)
    y = _ema_biased(xf, weight, biased0)
    last_biased = float(y[-1])
    # Debias 1 - w**n only where w**n is not negligible (pow over 1 M points is slow).
    k = int(min(xf.size, max(0, math.ceil(40.0 / -math.log(weight)) - count0)))
    if k > 0:
        n = count0 + np.arange(1, k + 1, dtype=np.float64)
        y[:k] /= 1.0 - weight ** n
    out[finite] = y
    return out, (last_biased, int(count0 + xf.size))


# ---------------------------------------------------------------- bucket reductions


def bucket_edges(n_rows: int, n_buckets: int) -> np.ndarray:
    """Row indices splitting ``n_rows`` into at most ``n_buckets`` contiguous, non-empty buckets."""
    if n_rows <= 0:
        return np.zeros(1, dtype=np.int64)
    n_buckets = max(1, min(int(n_buckets), n_rows))
    return np.unique(np.linspace(0, n_rows, n_buckets + 1).round().astype(np.int64))


def pool_rows(values: np.ndarray, n_buckets: int, how: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Reduce axis 0 of ``values`` to at most ``n_buckets`` rows keeping each bucket's max (or min).

    NaNs are ignored unless a whole bucket is NaN. Returns ``(pooled, edges)`` where bucket
    ``i`` covers rows ``edges[i]:edges[i+1]``. Fewer rows than buckets: returned unchanged.
    """
    return _pool(values, n_buckets, how, axis=0)


def pool_columns(values: np.ndarray, n_buckets: int, how: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """``pool_rows`` along axis 1 (for [layers, steps] images stored with steps contiguous)."""
    return _pool(values, n_buckets, how, axis=1)


def _pool(values, n_buckets: int, how: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values)
    n = values.shape[axis]
    edges = bucket_edges(n, n_buckets)
    if n == 0 or len(edges) - 1 == n:
        return values, np.arange(n + 1, dtype=np.int64)
    ufunc = {"max": np.fmax, "min": np.fmin}[how]     # fmax/fmin skip NaN; on integers they equal max/min
    return ufunc.reduceat(values, edges[:-1], axis=axis), edges


class RowPooler:
    """Max-pools a long [rows x layers] table read in chunks into fixed buckets.

    Memory stays proportional to the output (buckets x layers) plus one chunk, not to the
    table: the heatmap feeds it slices from the file and keeps only the result.
    """

    def __init__(self, n_rows: int, n_cols: int, n_buckets: int, how: str = "max"):
        self.edges = bucket_edges(n_rows, n_buckets)
        nb = len(self.edges) - 1
        self.how = how
        fill = -np.inf if how == "max" else np.inf
        self.out = np.full((max(nb, 0), n_cols), fill, dtype=np.float64)
        self.seen = np.zeros((max(nb, 0), n_cols), dtype=bool)

    def add(self, start: int, chunk: np.ndarray) -> None:
        """Fold rows ``start:start+len(chunk)`` into their buckets."""
        chunk = np.asarray(chunk)
        if chunk.dtype.kind != "f":      # float32 tables stay float32: no 2x copy per chunk
            chunk = chunk.astype(np.float64)
        if chunk.shape[0] == 0:
            return
        stop = start + chunk.shape[0]
        b0 = int(np.searchsorted(self.edges, start, side="right") - 1)
        b1 = int(np.searchsorted(self.edges, stop - 1, side="right") - 1)
        # Split points of this chunk at bucket boundaries, relative to the chunk.
        cuts = np.clip(self.edges[b0:b1 + 1] - start, 0, None)
        cuts[0] = 0
        ufunc = np.fmax if self.how == "max" else np.fmin
        part = ufunc.reduceat(chunk, cuts, axis=0)
        # fmax/fmin ignore NaN; `seen` remembers buckets that had any non-NaN value.
        self.out[b0:b1 + 1] = ufunc(self.out[b0:b1 + 1], part)
        self.seen[b0:b1 + 1] |= np.logical_or.reduceat(~np.isnan(chunk), cuts, axis=0)

    def result(self) -> np.ndarray:
        return np.where(self.seen, self.out, np.nan)


def minmax_envelope(x: np.ndarray, y: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Peak decimation for a line: per bucket keep the min and the max (in order of x).

    The same rule pyqtgraph's "peak" downsampling applies; used where we draw without
    pyqtgraph (benchmarks, reports) and to test that spikes survive.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size <= 2 * n_buckets:
        return x, y
    edges = bucket_edges(x.size, n_buckets)
    lo = np.fmin.reduceat(y, edges[:-1])
    hi = np.fmax.reduceat(y, edges[:-1])
    xs = np.empty(2 * (len(edges) - 1))
    ys = np.empty_like(xs)
    xs[0::2] = x[edges[:-1]]
    xs[1::2] = x[edges[1:] - 1]
    ys[0::2] = lo
    ys[1::2] = hi
    return xs, ys


# ---------------------------------------------------------------- histograms over time


def rebin_histograms(counts: np.ndarray, ranges: np.ndarray, n_bins: int = 64) -> tuple[np.ndarray, float, float]:
    """Put histograms recorded with different ranges onto one common value grid.

    ``counts`` [R, B] with per-row ``ranges`` [R, 2] (lower and upper edge). Counts are
    spread linearly inside their bins (cumulative counts interpolated at the new edges).
    Returns ``(image [R, n_bins], lo, hi)``; rows with no valid range are all zero.
    """
    counts = np.asarray(counts, dtype=np.float64)
    ranges = np.asarray(ranges, dtype=np.float64)
    R, B = counts.shape
    ok = np.isfinite(ranges).all(axis=1) & (ranges[:, 1] >= ranges[:, 0]) & (counts.sum(axis=1) > 0)
    out = np.zeros((R, n_bins))
    if not ok.any():
        return out, 0.0, 1.0
    lo = float(ranges[ok, 0].min())
    hi = float(ranges[ok, 1].max())
    if hi <= lo:
        hi = lo + 1.0
    new_edges = np.linspace(lo, hi, n_bins + 1)
    for r in np.flatnonzero(ok):
        a, b = ranges[r]
        if b <= a:  # all values equal: one spike
            cdf_edges = np.array([a, a + 1e-12 * max(1.0, abs(a))])
            cdf = np.array([0.0, counts[r].sum()])
        else:
            cdf_edges = np.linspace(a, b, B + 1)
            cdf = np.concatenate([[0.0], np.cumsum(counts[r])])
        out[r] = np.diff(np.interp(new_edges, cdf_edges, cdf))
    return out, lo, hi


LOG_SPAN = 10.0   # max/min ratio from which a log colour scale shows more than a linear one


def log_levels(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """log10 of a positive image when it spans orders of magnitude; else the image unchanged.

    Returns ``(display, is_log)``. Non-positive cells become NaN in log display.
    """
    img = np.asarray(image, dtype=np.float64)
    finite = img[np.isfinite(img)]
    pos = finite[finite > 0]
    if pos.size == 0 or pos.size < 0.9 * finite.size:
        return img, False
    if pos.max() / pos.min() < LOG_SPAN:
        return img, False
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(img > 0, np.log10(np.where(img > 0, img, 1.0)), np.nan)
    return out, True


def finite_levels(image: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    """Colour levels from the finite values (robust to NaN/Inf cells)."""
    img = np.asarray(image, dtype=np.float64)
    f = img[np.isfinite(img)]
    if f.size == 0:
        return 0.0, 1.0
    lo, hi = float(f.min()), float(f.max())
    if symmetric:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-3 or 1.0)
    return lo, hi


class PeakPyramid:
    """Min/max pyramid of a line: views with far more points than pixels draw a few points
    per pixel column, picked by min and max, in time independent of the data size.

    Level k keeps, for each block of ``BASE * FACTOR**k`` consecutive points, the block's
    minimum and maximum (NaN-aware) at the block's first x. Built once (~N/BASE memory);
    ``view`` returns raw points when few enough are in view. Needs non-decreasing x.
    """

    BASE = 8
    FACTOR = 4
    MIN_POINTS = 500_000  # below this pyqtgraph's own peak downsampling is as fast

    def __init__(self, x: np.ndarray, y: np.ndarray, min_points: int | None = None):
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.levels: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (block, x, lo, hi)
        n = self.x.size
        floor = self.MIN_POINTS if min_points is None else min_points
        self.usable = n >= max(floor, 2) and bool(np.all(self.x[1:] >= self.x[:-1]))
        if not self.usable:
            return
        starts = np.arange(0, n, self.BASE)
        lo = np.fmin.reduceat(self.y, starts)
        hi = np.fmax.reduceat(self.y, starts)
        block, xs = self.BASE, self.x[starts]
        while True:
            self.levels.append((block, xs, lo, hi))
            if lo.size <= 2048:
                break
            idx = np.arange(0, lo.size, self.FACTOR)
            lo, hi, xs = np.fmin.reduceat(lo, idx), np.fmax.reduceat(hi, idx), xs[idx]
            block *= self.FACTOR

    def view(self, x0: float | None, x1: float | None, n_px: int, per_px: int = 1):
        """Points to draw for the x range [x0, x1] on ``n_px`` pixels (None = everything)."""
        n = self.x.size
        i0 = 0 if x0 is None else max(0, int(np.searchsorted(self.x, x0, side="left")) - 1)
        i1 = n if x1 is None else min(n, int(np.searchsorted(self.x, x1, side="right")) + 1)
        count = i1 - i0
        budget = max(1, n_px) * per_px
        if not self.usable or count <= 2 * budget:
            return self.x[i0:i1], self.y[i0:i1]
        chosen = None
        for level in self.levels:      # coarsest level still giving >= budget buckets in view
            if count / level[0] >= budget:
                chosen = level
        block, xs, lo, hi = chosen or self.levels[0]
        b0, b1 = i0 // block, -(-i1 // block)
        m = b1 - b0
        # first and last raw point of the range keep the exact data extent (auto range)
        out_x = np.empty(2 * m + 2)
        out_y = np.empty(2 * m + 2)
        out_x[1:-1] = np.repeat(xs[b0:b1], 2)
        out_y[1:-1:2] = lo[b0:b1]
        out_y[2:-1:2] = hi[b0:b1]
        out_x[0], out_y[0] = xs[b0], self.y[b0 * block]
        out_x[-1], out_y[-1] = self.x[i1 - 1], self.y[i1 - 1]
        return out_x, out_y
