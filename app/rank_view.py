"""What the app shows of a distributed run (Qt-free): its ranks opened once per run entry,
a rank x step matrix pooled to screen columns, and the min-max band across ranks.

The rank files are opened beside the entry's own run (rank 0's, usually) the first time a
panel asks, refreshed when that run is, and closed with it.
"""
from __future__ import annotations

import warnings

import numpy as np

from trainspect.analysis.ranks import RankMatrix, open_ranks

_CACHE_ATTR = "_ranked_run"
_NONE = object()


def ranked(entry):
    """The RankedRun of a run entry (None for a single-process run), opened on first use."""
    got = getattr(entry, _CACHE_ATTR, None)
    if got is None:
        if entry.run is None:      # still opening
            return None
        try:
            got = open_ranks(entry.run)
        except Exception:  # noqa: BLE001 - a sibling that cannot be read leaves the run single
            got = None
        got = _NONE if got is None or len(got.runs) < 2 else got
        setattr(entry, _CACHE_ATTR, got)
    return None if got is _NONE else got


def refresh(entry) -> None:
    """Read what the sibling ranks added (the entry's own run is refreshed by the model)."""
    got = getattr(entry, _CACHE_ATTR, None)
    if got not in (None, _NONE):
        for run in got.runs.values():
            if run is not entry.run:
                run.refresh()


def release(entry) -> None:
    got = getattr(entry, _CACHE_ATTR, None)
    if got not in (None, _NONE):
        got.close()
    if hasattr(entry, _CACHE_ATTR):
        delattr(entry, _CACHE_ATTR)


def pool_columns(m: RankMatrix, max_cols: int = 2000):
    """(first step, last step, values[R, C]) with at most ``max_cols`` columns, each the
    mean over its steps of every rank (NaN where a rank has nothing in a column)."""
    n = len(m.steps)
    if n <= max_cols:
        return m.steps, m.steps, m.values
    edges = np.linspace(0, n, max_cols + 1).astype(np.int64)
    finite = np.isfinite(m.values)
    sums = np.add.reduceat(np.where(finite, m.values, 0.0), edges[:-1], axis=1)
    counts = np.add.reduceat(finite, edges[:-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return m.steps[edges[:-1]], m.steps[edges[1:] - 1], pooled


def spread(m: RankMatrix, max_points: int = 4000):
    """(steps, low, high): the min and max across ranks at each step where >= 2 ranks have a
    value, pooled to at most ``max_points`` (min of the minima, max of the maxima per pool)."""
    finite = np.isfinite(m.values)
    keep = finite.sum(axis=0) >= 2
    steps, v = m.steps[keep], m.values[:, keep]
    if not len(steps):
        return steps, np.empty(0), np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a column of +-inf/NaN mixes
        lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    if len(steps) > max_points:
        edges = np.linspace(0, len(steps), max_points + 1).astype(np.int64)[:-1]
        steps = steps[edges]
        lo, hi = np.minimum.reduceat(lo, edges), np.maximum.reduceat(hi, edges)
    return steps, lo, hi


def rank_contrast(m: RankMatrix) -> float:
    """How much the ranks differ: the median over steps of (largest rank / median rank).
    Under DDP the step times match (the all-reduce waits for the slowest) while the data
    wait shows the straggler, so this picks the timing series worth showing first."""
    v = m.values[:, np.all(np.isfinite(m.values), axis=0)]
    if v.shape[0] < 2 or v.shape[1] == 0:
        return 0.0
    mid = np.median(v, axis=0)
    ok = mid > 0
    return float(np.median(v.max(axis=0)[ok] / mid[ok])) if ok.any() else 0.0
