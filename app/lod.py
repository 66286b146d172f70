"""Pure-numpy level-of-detail and smoothing helpers used by the plots.

Nothing here thins data by sampling: reductions keep the extreme value of every bucket, so a
one-step spike survives at every zoom level. No Qt, no file access: tested directly.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- EMA smoothing


def _ema_block_size(a: float, magnitude: float = 1.0) -> int:
    # Inside a block values are scaled by a**-k: keep |x| * a**-B far from float64 overflow
    # (e**709), also for a diverged run's 1e300 losses.
    headroom = 600.0 - math.log(max(magnitude, 1.0))
    return int(max(1, min(8192, math.floor(headroom / max(-math.log(a), 1e-12)))))


def _ema_biased(x: np.ndarray, a: float, y0: float) -> np.ndarray:
    """y[n] = a*y[n-1] + (1-a)*x[n] with y[-1] = y0, vectorised in blocks (no per-point loop)."""
    n = x.size
    B = _ema_block_size(a, float(np.max(np.abs(x))) if n else 1.0)
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
    # Averaged about the first value r (the average of x - r, plus r): a constant series (a
    # fixed LR, a flat val loss) comes out exactly constant. Averaged as it was, its rounding
    # noise of a few ulps made the plot's y range 1e-15 wide: no tick labels, a wavy line.
    r = float(xf[0])
    y = _ema_biased(xf - r, weight, biased0 - r * (1.0 - weight ** count0))
    n_total = count0 + xf.size
    last_biased = float(y[-1]) + r * (1.0 - weight ** n_total)
    # Debias 1 - w**n only where w**n is not negligible (pow over 1 M points is slow).
    k = int(min(xf.size, max(0, math.ceil(40.0 / -math.log(weight)) - count0)))
    if k > 0:
        n = count0 + np.arange(1, k + 1, dtype=np.float64)
        y[:k] /= 1.0 - weight ** n
    out[finite] = y + r
    return out, (last_biased, int(n_total))


# ---------------------------------------------------------------- step-weighted smoothing
#
# The EMA runs per point, so one weight means a window of 1/(1-w) *points*: a validation loss
# logged every 500 steps beside a training loss logged every step got a window 500x longer in
# steps, and its bold curve lagged far behind its values. A curve whose points are g times
# further apart (in steps) than those of the densest curve shown gets the per-point weight
# w ** g instead: the same window in steps for every curve (the densest one keeps w itself).
# g is quantised to a power of 2 so that a live run's drifting gaps rarely change a curve's
# weight (each change smooths the series anew, a read of the file for a long one).

GAP_HYSTERESIS = 0.25      # log2 g must move this far past the midpoint between powers of 2
STEP_WEIGHT_FLOOR = 0.01   # a smaller per-point weight moves each point by < 1 %: drawn raw


def step_gap(span, n_points: int) -> float | None:
    """Mean step gap of a series of ``n_points`` over the steps ``span`` = (first, last); None
    when it says nothing (fewer than 2 points, all at one step)."""
    if span is None or n_points < 2:
        return None
    gap = (float(span[1]) - float(span[0])) / (n_points - 1)
    return gap if math.isfinite(gap) and gap > 0 else None


def gap_exponent(gap, ref_gap, previous: int | None = None) -> int | None:
    """``k`` with ``2**k`` nearest to ``gap / ref_gap`` (at least 0), or ``previous`` while the
    ratio stays within GAP_HYSTERESIS of the midpoints around ``2**previous`` (a gap that hovers
    near a midpoint does not flip back and forth). None/``previous`` when a gap is unknown."""
    if gap is None or ref_gap is None or not gap > 0 or not ref_gap > 0:
        return previous
    e = max(0.0, math.log2(gap / ref_gap))
    if previous is not None and abs(e - previous) <= 0.5 + GAP_HYSTERESIS:
        return previous
    return round(e)


def step_weight(weight: float, exponent: int | None) -> float:
    """The per-point EMA weight of a curve whose gap is ``2**exponent`` times the densest's:
    ``weight ** 2**exponent``; exactly ``weight`` for the densest (exponent 0 or unknown), 0.0
    (raw) where it would move a point by less than STEP_WEIGHT_FLOOR."""
    if not exponent or weight <= 0.0:
        return float(weight)
    w = float(weight) ** (2.0 ** exponent)
    return w if w >= STEP_WEIGHT_FLOOR else 0.0


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
    """log10 of a non-negative image whose positive cells span orders of magnitude; else the
    image unchanged.

    Returns ``(display, is_log)``. Non-positive cells become NaN in log display. Exact zeros do
    not turn the log scale off (a vanishing gradient underflows to 0 in its first layers: a
    linear scale showed the whole map as one colour); the heatmap draws them in their own colour.
    """
    img = np.asarray(image, dtype=np.float64)
    finite = img[np.isfinite(img)]
    pos = finite[finite > 0]
    if pos.size == 0 or np.count_nonzero(finite < 0) > 0.1 * finite.size:
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


ROBUST_PCT = (1.0, 99.0)   # colour levels clip at most this share of the cells each side ...
FENCE_IQR = 3.0            # ... and cells further than this many IQRs out of the middle half


def robust_levels(image: np.ndarray) -> tuple[float, float]:
    """Colour levels of a log-display image that a few far-out cells do not stretch: a run whose
    ReLUs died logged gradients of 1e-41 in a few cells, and min..max levels showed its first
    300 steps (1e-4..1) as one colour. The levels are the 1st..99th percentiles, pulled in to
    Tukey's far-out fences (quartiles -/+ 3 IQR); the cells outside show the end colours."""
    img = np.asarray(image, dtype=np.float64)
    f = img[np.isfinite(img)]
    if f.size == 0:
        return 0.0, 1.0
    p_lo, q1, q3, p_hi = np.percentile(f, [ROBUST_PCT[0], 25.0, 75.0, ROBUST_PCT[1]])
    fence = FENCE_IQR * (q3 - q1)
    lo, hi = max(float(p_lo), q1 - fence), min(float(p_hi), q3 + fence)
    if hi <= lo:                  # (nearly) one value: the plain range
        return finite_levels(f)
    return float(lo), float(hi)


# ---------------------------------------------------------------- bounded envelope (M4)


def ema_states(values, weight: float, state: tuple[float, int] | None = None):
    """``ema`` plus the EMA state *before* each point: ``(smoothed, biased, counts, new_state)``.

    ``(biased[i], counts[i])`` continues the average at point ``i`` (``ema(values[i:], weight,
    (biased[i], counts[i]))`` equals ``smoothed[i:]``): a zoomed-in re-read of a range starts
    its smoothed curve where the whole series had it."""
    x = np.asarray(values, dtype=np.float64)
    biased0, count0 = state if state is not None else (0.0, 0)
    smoothed, new_state = ema(x, weight, (biased0, count0))
    if x.size == 0:
        return smoothed, np.zeros(0), np.zeros(0, np.int64), new_state
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    seen = np.arange(1, x.size + 1) if all_finite else np.cumsum(finite)
    counts = count0 + seen - finite                       # finite points before each point
    after = (x if weight == 0.0 else smoothed).copy()     # the biased average after each point
    if weight > 0.0:
        # ema() divided the first points by 1 - w**n (its debiasing): undo it for the state
        limit = math.ceil(40.0 / -math.log(weight))
        k = int(np.searchsorted(counts, limit, side="left"))
        if k:
            after[:k] *= 1.0 - weight ** (counts[:k] + 1.0)
    if not all_finite:     # a non-finite point leaves the average as it was: carry it forward
        idx = np.where(finite, np.arange(x.size), -1)
        np.maximum.accumulate(idx, out=idx)
        after = np.where(idx >= 0, after[np.maximum(idx, 0)], biased0)
    biased = np.empty_like(after)
    biased[0] = biased0
    biased[1:] = after[:-1]
    return smoothed, biased, counts.astype(np.int64), new_state


# Bucket columns: a point at the bucket's first and last row, its minimum and maximum raw value
# and smoothed value (each with step, wall time and row, to draw them where and in the order they
# happened), the rows it covers, the EMA state at its start, and its non-finite values: how
# many ("nb") and the step and wall time of the first ("sb", "wb") and last ("se", "we"), so a
# NaN or Inf, which a line cannot draw, is still marked at every zoom level (Envelope.nonfinite).
_ENV_INT = ("n", "r0", "r1", "nb")
_EXTREMES = ("lo", "hi", "mlo", "mhi")      # raw min/max, smoothed min/max
_NONFINITE = ("sb", "wb", "se", "we")
_ENV_COLS = _ENV_INT + ("sf", "wf", "yf", "mf", "sl", "wl", "yl", "ml", "eb", "ec") + _NONFINITE + tuple(
    f"{k}{e}" for e in _EXTREMES for k in ("y", "s", "w", "r"))


def _pick(a: dict, b: dict, take_b: np.ndarray, ext: str, out: dict) -> None:
    for k in ("y", "s", "w", "r"):
        out[k + ext] = np.where(take_b, b[k + ext], a[k + ext])


def _better(a: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    """Where ``b`` holds the new extreme (NaN never wins over a number)."""
    beats = (b < a) if lower else (b > a)
    return beats | (np.isnan(a) & ~np.isnan(b))


def _merge(a: dict, b: dict) -> dict:
    """Buckets ``a`` followed by buckets ``b`` (same lengths), merged pairwise."""
    out = {"n": a["n"] + b["n"], "r0": a["r0"], "r1": b["r1"], "eb": a["eb"], "ec": a["ec"], "nb": a["nb"] + b["nb"]}
    for k in ("sf", "wf", "yf", "mf"):
        out[k] = a[k]
    for k in ("sl", "wl", "yl", "ml"):
        out[k] = b[k]
    for k in ("sb", "wb"):      # the first non-finite point: a's if it has one
        out[k] = np.where(a["nb"] > 0, a[k], b[k])
    for k in ("se", "we"):      # the last: b's if it has one
        out[k] = np.where(b["nb"] > 0, b[k], a[k])
    for ext, lower in (("lo", True), ("hi", False), ("mlo", True), ("mhi", False)):
        _pick(a, b, _better(a["y" + ext], b["y" + ext], lower), ext, out)
    return out


def _segment_marks(marked: np.ndarray, size: int):
    """Per run of ``size`` flags: how many are set, and the index of the first and the last
    set one (meaningless where none is)."""
    nb = -(-marked.size // size)
    padded = np.zeros(nb * size, bool)
    padded[: marked.size] = marked
    grid = padded.reshape(nb, size)
    base = np.arange(nb) * size
    first = grid.argmax(axis=1) + base
    last = size - 1 - grid[:, ::-1].argmax(axis=1) + base
    return grid.sum(axis=1).astype(np.int64), first, np.minimum(last, marked.size - 1)


def _segment_extreme(v: np.ndarray, size: int, lower: bool) -> np.ndarray:
    """Index of the min (max) of each run of ``size`` values, NaN skipped (0 if all NaN)."""
    nb = -(-v.size // size)
    fill = np.inf if lower else -np.inf
    padded = np.full(nb * size, fill)
    padded[: v.size] = np.where(np.isnan(v), fill, v)
    pos = (np.argmin if lower else np.argmax)(padded.reshape(nb, size), axis=1)
    return pos + np.arange(nb) * size


class Envelope:
    """Bounded level of detail of one series, built incrementally as points arrive.

    At most ``capacity`` buckets of ``size`` consecutive points each (the last one filling up);
    when they are full, neighbours merge and ``size`` doubles. Every bucket keeps its first and
    last point and its minimum and maximum (raw and smoothed, M4): drawn in order, a line through
    them is the line through all the points at one bucket per pixel, and a one-step spike is
    a bucket's extreme at every size. Below ``capacity`` points the buckets are the points
    themselves. Memory: at most ``capacity`` x 29 numbers, whatever the series' length.
    """

    CAPACITY = 4096

    def __init__(self, weight: float = 0.0, capacity: int | None = None, ema_state=None):
        self.capacity = max(4, int(capacity or self.CAPACITY)) // 2 * 2
        self.weight = float(weight)
        self.size = 1
        self.m = 0
        # Allocated as the buckets come (a short series holds little), up to ``capacity``.
        self.cols = {k: np.zeros(min(self.capacity, 64), np.int64 if k in _ENV_INT else np.float64) for k in _ENV_COLS}
        self.ema_state = ema_state
        self.points = 0
        self.finite = 0
        self.nonpositive = 0
        self.span = {"s": (np.inf, -np.inf), "w": (np.inf, -np.inf)}   # finite x extent per axis
        self.ordered = True       # steps never went back (x can be searched)

    # ------------------------------------------------------------ building
    @property
    def exact(self) -> bool:
        """Every point is held (one point per bucket)."""
        return self.size == 1

    def extend(self, rows, steps, wall, values) -> None:
        """Append points (in row order)."""
        rows = np.asarray(rows, np.int64)
        steps = np.asarray(steps, np.float64)
        wall = np.asarray(wall, np.float64)
        values = np.asarray(values, np.float64)
        k = values.size
        if k == 0:
            return
        if self.m and steps[0] < self.cols["sl"][self.m - 1] or (k > 1 and np.any(np.diff(steps) < 0)):
            self.ordered = False
        smoothed, biased, counts, self.ema_state = ema_states(values, self.weight, self.ema_state)
        pts = {"r": rows, "s": steps, "w": wall, "y": values, "m": smoothed, "eb": biased, "ec": counts}
        self.points += k
        fin = np.isfinite(values)
        self.finite += int(fin.sum())
        self.nonpositive += int((values[fin] <= 0).sum())
        for key, xs in (("s", steps), ("w", wall)):
            f = xs[np.isfinite(xs)]
            if f.size:
                lo, hi = self.span[key]
                self.span[key] = (min(lo, float(f.min())), max(hi, float(f.max())))
        i = 0
        while i < k:
            last = self.m - 1
            if self.m and self.cols["n"][last] < self.size:
                take = int(min(k - i, self.size - self.cols["n"][last]))
                part = self._buckets(pts, i, i + take, take)
                merged = _merge(self._slice(last, last + 1), part)
                for c in _ENV_COLS:
                    self.cols[c][last] = merged[c][0]
                i += take
                continue
            need = -(-(k - i) // self.size)
            if self.m + need > self.capacity:
                self._halve()
                continue
            part = self._buckets(pts, i, k, self.size)
            self._reserve(self.m + need)
            for c in _ENV_COLS:
                self.cols[c][self.m: self.m + need] = part[c]
            self.m += need
            i = k

    def _reserve(self, m: int) -> None:
        have = len(self.cols["n"])
        if m > have:
            size = min(self.capacity, max(m, 2 * have))
            for c, v in self.cols.items():
                self.cols[c] = np.concatenate([v, np.zeros(size - have, v.dtype)])

    def _slice(self, a: int, b: int, step: int = 1) -> dict:
        return {c: v[a:b:step] for c, v in self.cols.items()}

    def _halve(self) -> None:
        """Merge neighbouring buckets: half as many, twice the size."""
        m = self.m
        pairs = m // 2
        merged = _merge(self._slice(0, 2 * pairs, 2), self._slice(1, 2 * pairs, 2))
        odd = self._slice(m - 1, m) if m % 2 else None
        for c in _ENV_COLS:
            self.cols[c][:pairs] = merged[c]
            if odd is not None:
                self.cols[c][pairs] = odd[c][0]
        self.m = pairs + (1 if odd is not None else 0)
        self.size *= 2

    @staticmethod
    def _buckets(pts: dict, a: int, b: int, size: int) -> dict:
        """Columns of the buckets of ``size`` points made of points [a, b)."""
        starts = np.arange(a, b, size)
        ends = np.minimum(starts + size, b) - 1
        out = {"n": (ends - starts + 1).astype(np.int64), "r0": pts["r"][starts], "r1": pts["r"][ends],
               "eb": pts["eb"][starts], "ec": pts["ec"][starts].astype(np.float64)}
        for k in ("s", "w", "y", "m"):
            out[k + "f"] = pts[k][starts]
            out[k + "l"] = pts[k][ends]
        out["nb"], first, last = _segment_marks(~np.isfinite(pts["y"][a:b]), size)
        for k in ("s", "w"):
            out[k + "b"], out[k + "e"] = pts[k][a + first], pts[k][a + last]
        for ext, src, lower in (("lo", "y", True), ("hi", "y", False), ("mlo", "m", True), ("mhi", "m", False)):
            idx = a + _segment_extreme(pts[src][a:b], size, lower)
            out["y" + ext] = pts[src][idx]
            for k in ("s", "w", "r"):
                out[k + ext] = pts[k][idx]
        return out

    # ------------------------------------------------------------ reading
    def step_gap(self) -> float | None:
        """Mean step gap of the series, (last - first) / (points - 1) (see ``step_gap``)."""
        return step_gap(self.x_span("s"), self.points)

    def x_span(self, axis: str = "s"):
        lo, hi = self.span[axis]
        return (lo, hi) if lo <= hi else None

    def bucket_range(self, x0, x1, axis: str = "s") -> tuple[int, int]:
        """Buckets [b0, b1) covering the x range [x0, x1] (None: open end), one more each side."""
        if not self.ordered:
            return 0, self.m
        xf = self.cols[axis + "f"][: self.m]
        b0 = 0 if x0 is None else max(0, int(np.searchsorted(xf, x0, side="right")) - 2)
        b1 = self.m if x1 is None else min(self.m, int(np.searchsorted(xf, x1, side="right")) + 1)
        return b0, max(b0, b1)

    def draw(self, b0: int = 0, b1: int | None = None, axis: str = "s", smoothed: bool = False,
             max_buckets: int | None = None):
        """``(x, y)`` to draw for buckets [b0, b1): each bucket's first, min, max and last point
        in the order they were logged (one point for a bucket of one). Neighbours are merged
        until at most ``max_buckets`` remain (a few per pixel column are all a plot can show)."""
        b1 = self.m if b1 is None else b1
        c = self._slice(b0, b1)
        while max_buckets is not None and len(c["n"]) > max(1, max_buckets):
            m = len(c["n"])
            merged = _merge({k: v[0:m - 1:2] for k, v in c.items()}, {k: v[1:m:2] for k, v in c.items()})
            c = {k: np.concatenate([merged[k], c[k][m - 1:]]) if m % 2 else merged[k] for k in c}
        lo, hi, y = ("mlo", "mhi", "m") if smoothed else ("lo", "hi", "y")
        lo_first = c["r" + lo] <= c["r" + hi]
        mid1 = {k: np.where(lo_first, c[k + lo], c[k + hi]) for k in (axis, "y")}
        mid2 = {k: np.where(lo_first, c[k + hi], c[k + lo]) for k in (axis, "y")}
        xs = np.stack([c[axis + "f"], mid1[axis], mid2[axis], c[axis + "l"]], axis=1)
        ys = np.stack([c[y + "f"], mid1["y"], mid2["y"], c[y + "l"]], axis=1)
        keep = np.ones(xs.shape, bool)
        keep[:, 1:] = (c["n"] > 1)[:, None]
        return xs[keep], ys[keep]

    def nonfinite(self, b0: int = 0, b1: int | None = None, axis: str = "s", max_spans: int = 64) -> list:
        """``[(x0, x1), ...]``: where buckets [b0, b1) hold NaN or Inf values, from the first to
        the last such point of each run of neighbouring buckets that hold some (a line has a
        gap there that says nothing). Spans closest to each other are joined until at most
        ``max_spans`` remain (a plot shows a few dozen bands, not thousands)."""
        b1 = self.m if b1 is None else b1
        c = self._slice(b0, b1)
        idx = np.flatnonzero(c["nb"] > 0)
        if idx.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(idx) > 1)          # a run ends after idx[breaks]
        starts = c[axis + "b"][idx[np.r_[0, breaks + 1]]]
        ends = c[axis + "e"][idx[np.r_[breaks, idx.size - 1]]]
        if len(starts) > max_spans:   # keep the widest gaps between runs, join across the others
            gaps = starts[1:] - ends[:-1]
            keep = np.sort(np.argsort(gaps, kind="stable")[len(gaps) - max(0, max_spans - 1):])
            starts, ends = starts[np.r_[0, keep + 1]], ends[np.r_[keep, len(ends) - 1]]
        return [(float(a), float(b)) for a, b in zip(starts, ends)]

    def nearest(self, x: float, axis: str = "s"):
        """``(step, value, smoothed value)`` of the held point nearest to ``x``; None if empty."""
        if self.m == 0:
            return None
        b0, b1 = self.bucket_range(x, x, axis)
        c = self._slice(b0, b1)
        cand = [(c[axis + "f"], c["sf"], c["yf"], c["mf"]), (c[axis + "l"], c["sl"], c["yl"], c["ml"])]
        if not self.exact:   # a bucket's extremes too (their smoothed value is not held)
            cand += [(c[axis + e], c["s" + e], c["y" + e], np.full(len(c["n"]), np.nan)) for e in ("lo", "hi")]
        xs, ss, ys, ms = (np.concatenate(parts) for parts in zip(*cand))
        with np.errstate(invalid="ignore"):
            i = int(np.nanargmin(np.abs(xs - x))) if np.isfinite(xs).any() else 0
        return int(ss[i]), float(ys[i]), (None if np.isnan(ms[i]) and not np.isnan(ys[i]) else float(ms[i]))

    def state_at(self, b: int):
        """EMA state before bucket ``b``'s first point (continues the smoothed curve there)."""
        return float(self.cols["eb"][b]), int(self.cols["ec"][b])

    def rows_of(self, b0: int, b1: int) -> tuple[int, int]:
        """Rows [first, last + 1) of the scalar table holding buckets [b0, b1)."""
        return int(self.cols["r0"][b0]), int(self.cols["r1"][b1 - 1]) + 1

    @property
    def last_step(self):
        return int(self.cols["sl"][self.m - 1]) if self.m else None

    def held(self) -> int:
        """Numbers held (what the tests bound)."""
        return sum(v.size for v in self.cols.values())
