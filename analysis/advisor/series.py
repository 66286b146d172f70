"""Robust helpers over 1-D series and [records x layers] matrices (pure numpy).

The rules look at *shapes* of curves, so everything here is about being robust to
minibatch noise (medians, not means), to the sampling rate (work in points, not steps)
and to long runs (reduce a million points to a few hundred bins first).
"""
from __future__ import annotations

import warnings

import numpy as np


def nanmedian(a, axis=None):
    """``np.nanmedian`` without its warnings: an all-NaN slice (a frozen parameter's gradient
    norms, a statistic a layer never had) is NaN, as expected, not a message on the console."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def as_series(steps, values) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=np.int64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if steps.shape != values.shape:
        raise ValueError(f"steps ({steps.size}) and values ({values.size}) differ in length")
    return steps, values


def first_nonfinite(values) -> int | None:
    """Index of the first NaN/Inf value, or None."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return None
    return int(np.argmax(bad))


def finite_prefix(steps, values):
    """The part of a series before its first non-finite value (a run is over once it is NaN)."""
    i = first_nonfinite(values)
    return (steps, values) if i is None else (steps[:i], values[:i])


def bin_reduce(steps, values, max_bins: int = 200, func=np.median):
    """Reduce a series to at most ``max_bins`` equal-count bins (``func`` of each bin).

    Each bin's step is its last step. With fewer points than bins the series is returned
    as it is, so short series (a validation loss every N steps) keep every point.
    """
    n = len(values)
    if n <= max_bins:
        return steps, np.asarray(values, dtype=np.float64)
    edges = np.linspace(0, n, max_bins + 1).astype(np.int64)
    size = int(np.min(np.diff(edges)))
    if np.all(np.diff(edges) == size):
        v = func(np.asarray(values[: size * max_bins]).reshape(max_bins, size), axis=1)
    else:
        v = np.array([func(values[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    return steps[edges[1:] - 1], np.asarray(v, dtype=np.float64)


def rolling_median(x, width: int) -> np.ndarray:
    """Centered running median; the window shrinks at the ends. For short (binned) arrays."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    width = max(1, min(int(width), n))
    if width <= 1 or n < 3:
        return x.copy()
    half = width // 2
    padded = np.concatenate([np.full(half, np.nan), x, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return nanmedian(windows, axis=1)


def smooth_curve(steps, values, max_bins: int = 200, width_frac: float = 0.05, min_width: int = 5):
    """Bin-median then running-median: the curve's level, free of minibatch noise and spikes."""
    s, v = bin_reduce(steps, values, max_bins=max_bins)
    width = max(min_width, int(round(width_frac * len(v))))
    return s, rolling_median(v, width | 1)


def head_level(values, frac: float = 0.01, min_points: int = 5) -> float:
    """The initial level: median of the first ``frac`` of the points (at least ``min_points``)."""
    k = max(min_points, int(len(values) * frac))
    return float(np.median(values[:k]))


def tail_level(values, frac: float = 0.1, min_points: int = 3) -> float:
    k = max(min_points, int(len(values) * frac))
    return float(np.median(values[-k:]))


def true_runs(mask) -> list[tuple[int, int]]:
    """(start, stop) index pairs of consecutive True values (stop exclusive)."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate([[0], m, [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def column_bins(matrix, max_bins: int = 200, func=nanmedian) -> tuple[np.ndarray, np.ndarray]:
    """Reduce an [R x L] matrix to at most ``max_bins`` row bins; returns (row_end_index, [B x L])."""
    m = np.asarray(matrix, dtype=np.float64)
    r = m.shape[0]
    if r <= max_bins:
        return np.arange(r), m
    edges = np.linspace(0, r, max_bins + 1).astype(np.int64)
    out = np.empty((max_bins, m.shape[1]))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        out[i] = func(m[a:b], axis=0)
    return edges[1:] - 1, out


def rounded(values, digits: int = 4) -> list:
    """JSON-friendly list of floats with a few significant digits (NaN/Inf as strings)."""
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel().tolist():
        if np.isfinite(v):
            out.append(float(f"{v:.{digits}g}"))
        else:
            out.append(str(v))
    return out


def fmt(v: float) -> str:
    """Short human number: 0.0123, 1.2e-06, 3.4e+04."""
    if not np.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e4):
        return f"{v:.2g}"
    return f"{v:.3g}"
