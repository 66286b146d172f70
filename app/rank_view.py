"""What the app shows of a distributed run (Qt-free): its ranks opened once per run entry,
a rank x step matrix pooled to screen columns, and the min-max band across ranks.

The rank files are opened beside the entry's own run (rank 0's, usually) the first time a
panel asks, refreshed when that run is, and closed with it. Every read of them (``ranked``,
``refresh`` and the matrices) runs on a background reader holding the entry's file lock
(``run_io.locked_read``): that lock also serialises the sibling files, which have no lock of
their own. The GUI thread only asks :func:`known` (no file access).
"""
from __future__ import annotations

import warnings

import numpy as np

from trainspect.analysis.ranks import RankedRun, RankMatrix, open_ranks

_CACHE_ATTR = "_rank_files"
_UNKNOWN = object()


class _RankFiles:
    """The sibling files of one opened run (an entry reopened after a restart gets new ones)."""

    __slots__ = ("run", "ranked", "closed")

    def __init__(self, run):
        self.run = run              # the entry's run these siblings go with
        self.ranked = _UNKNOWN      # RankedRun, None (a single-process run) or not looked at yet
        self.closed = False


def _files(entry) -> _RankFiles:
    got = getattr(entry, _CACHE_ATTR, None)
    if got is None or got.run is not entry.run:
        got = _RankFiles(entry.run)
        setattr(entry, _CACHE_ATTR, got)
    return got


def ranked(entry):
    """The RankedRun of a run entry (None for a single-process run), opened on first use.
    Background readers only, holding the entry's file lock."""
    if entry.run is None or getattr(entry.run, "closed", False):
        return None
    files = _files(entry)
    if files.closed:
        return None
    if files.ranked is _UNKNOWN:
        try:
            got = open_ranks(entry.run)
        except Exception:  # noqa: BLE001 - a sibling that cannot be read leaves the run single
            got = None
        if got is not None and len(got.runs) < 2:
            got.close()
            got = None
        files.ranked = got
    return files.ranked


def known(entry):
    """GUI thread, no file access: True for a distributed run, False for a single-process
    one, None when its rank files have not been looked at yet."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is None or files.run is not entry.run or files.ranked is _UNKNOWN or files.closed:
        return None
    return files.ranked is not None


def refresh(entry) -> None:
    """Read what the sibling ranks added (the entry's own run is refreshed by the model).
    Background readers only, holding the entry's file lock."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is not None and files.run is entry.run and isinstance(files.ranked, RankedRun):
        for run in files.ranked.runs.values():
            if run is not entry.run:
                run.refresh()


def release(entry, io) -> None:
    """Forget the entry's rank files; they are closed on ``io`` (a ``BackgroundReads``) once no
    read holds them. Looked at again on the next ``ranked`` (unless the run is closed)."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is None:
        return
    delattr(entry, _CACHE_ATTR)

    def close():
        with files.run.locked():
            got, files.ranked, files.closed = files.ranked, None, True
            if isinstance(got, RankedRun):
                got.close()

    io.submit(close)


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
