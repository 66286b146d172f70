"""Bounded step buckets of one series, built as rows arrive (pure numpy, no Qt, no file access).

What the Ranks tab's heatmaps draw: every rank's metric in buckets of ``size`` steps aligned
on multiples of ``size`` (bucket b holds steps [b*size, (b+1)*size)), at most ``capacity`` of
them; when a new step falls outside, neighbours merge and ``size`` doubles. Every bucket keeps
aggregates that merge exactly: the point count, the finite values' count and sum (the mean), the
largest finite value and its step (a one-step spike stays visible at every size), the first and
last step it holds and its last non-finite value. Two ranks' buckets line up once brought to
the same size, so :func:`pool` lays them side by side without reading anything again.
"""
from __future__ import annotations

import numpy as np

# per bucket: points, finite points, sum, max, step of the max, first / last step, a non-finite value
_COLS = ("pts", "n", "sum", "hi", "hi_s", "s0", "s1", "bad")
_EMPTY = {"pts": 0.0, "n": 0.0, "sum": 0.0, "hi": -np.inf, "hi_s": np.nan, "s0": np.inf, "s1": -np.inf,
          "bad": np.nan}


def _empty(m: int) -> dict:
    return {k: np.full(m, v) for k, v in _EMPTY.items()}


def _combine(a: dict, b: dict) -> dict:
    """Buckets ``a`` and ``b`` (same shapes) merged element-wise; ``b`` holds the later points."""
    b_wins = b["hi"] > a["hi"]
    return {"pts": a["pts"] + b["pts"], "n": a["n"] + b["n"], "sum": a["sum"] + b["sum"],
            "hi": np.where(b_wins, b["hi"], a["hi"]), "hi_s": np.where(b_wins, b["hi_s"], a["hi_s"]),
            "s0": np.minimum(a["s0"], b["s0"]), "s1": np.maximum(a["s1"], b["s1"]),
            "bad": np.where(b["pts"] > b["n"], b["bad"], a["bad"])}


def _reduce(c: dict, starts: np.ndarray) -> dict:
    """Consecutive runs of buckets (each starting at ``starts``, along the last axis) merged."""
    out = {k: np.add.reduceat(c[k], starts, axis=-1) for k in ("pts", "n", "sum")}
    out["s0"] = np.minimum.reduceat(c["s0"], starts, axis=-1)
    out["s1"] = np.maximum.reduceat(c["s1"], starts, axis=-1)
    out["hi"] = np.maximum.reduceat(c["hi"], starts, axis=-1)
    # the step of each run's max: the first bucket (in order) holding it
    m = c["hi"].shape[-1]
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, m)))
    wins = np.where(c["hi"] == out["hi"][..., group], np.arange(m), m)
    first = np.minimum.reduceat(wins, starts, axis=-1)
    out["hi_s"] = np.where(first < m, np.take_along_axis(c["hi_s"], np.minimum(first, m - 1), axis=-1)
                           if c["hi_s"].ndim > 1 else c["hi_s"][np.minimum(first, m - 1)], np.nan)
    has_bad = c["pts"] > c["n"]
    last_bad = np.maximum.reduceat(np.where(has_bad, np.arange(m), -1), starts, axis=-1)
    picked = (np.take_along_axis(c["bad"], np.maximum(last_bad, 0), axis=-1) if c["bad"].ndim > 1
              else c["bad"][np.maximum(last_bad, 0)])
    out["bad"] = np.where(last_bad >= 0, picked, np.nan)
    return out


class StepColumns:
    """One series in at most ``capacity`` step buckets (see the module docstring).

    ``add`` takes points in the order logged. A step logged again right after itself (the
    same step twice in a row) counts once with its last value, as ``align`` keeps it: the
    last point is held back until a later step arrives (``pending``) and counted on reading.
    Memory: ``capacity`` x 8 numbers at most, whatever the series' length."""

    CAPACITY = 4096

    def __init__(self, capacity: int | None = None):
        self.capacity = max(4, int(capacity or self.CAPACITY)) // 2 * 2
        self.size = 1
        self.b0 = 0               # bucket number of cols[...][0]
        self.m = 0                # buckets in use: b0 .. b0 + m - 1
        self.cols = _empty(min(self.capacity, 64))
        self.pending = None       # (step, value) of the last point, not counted yet
        self.points = 0           # points taken (a repeated step counted once)
        self.top = -np.inf        # largest step taken (the held-back one too)

    def add(self, steps, values) -> None:
        steps = np.asarray(steps, np.int64)
        values = np.asarray(values, np.float64)
        if steps.size == 0:
            return
        if self.pending is not None:
            steps = np.concatenate([[self.pending[0]], steps])
            values = np.concatenate([[self.pending[1]], values])
        last = np.append(steps[1:] != steps[:-1], True)       # the last of each run of one step
        steps, values = steps[last], values[last]
        self.pending = (int(steps[-1]), float(values[-1]))
        self.top = max(self.top, float(steps.max()))
        self._count(steps[:-1], values[:-1])

    def _count(self, steps: np.ndarray, values: np.ndarray) -> None:
        if steps.size == 0:
            return
        self.points += steps.size
        self._reach(int(steps.min()), int(steps.max()))
        idx = steps // self.size
        if np.any(idx[1:] < idx[:-1]):                         # steps that went back: group them
            order = np.argsort(idx, kind="stable")
            idx, steps, values = idx[order], steps[order], values[order]
        starts = np.flatnonzero(np.append(True, idx[1:] != idx[:-1]))
        fin = np.isfinite(values)
        pts = {"pts": np.ones(steps.size), "n": fin.astype(np.float64), "sum": np.where(fin, values, 0.0),
               "hi": np.where(fin, values, -np.inf), "hi_s": steps.astype(np.float64),
               "s0": steps.astype(np.float64), "s1": steps.astype(np.float64), "bad": np.where(fin, np.nan, values)}
        part = _reduce(pts, starts)
        at = idx[starts] - self.b0
        mine = {k: v[at] for k, v in self.cols.items()}
        merged = _combine(mine, part)
        for k in _COLS:
            self.cols[k][at] = merged[k]

    def _reach(self, lo: int, hi: int) -> None:
        """Make room for steps [lo, hi]: double the size until they fit, move the origin."""
        while True:
            blo, bhi = lo // self.size, hi // self.size
            if self.m:
                blo, bhi = min(blo, self.b0), max(bhi, self.b0 + self.m - 1)
            if bhi - blo + 1 <= self.capacity:
                break
            self._halve()
        if not self.m:
            self.b0, self.m = blo, 0
        shift = self.b0 - blo
        need = bhi - blo + 1
        if shift or need > len(self.cols["pts"]):
            size = min(self.capacity, max(need, 2 * len(self.cols["pts"])))
            grown = _empty(size)
            for k in _COLS:
                grown[k][shift: shift + self.m] = self.cols[k][: self.m]
            self.cols = grown
        self.b0, self.m = blo, need

    def _halve(self) -> None:
        """Merge neighbouring buckets (2k, 2k+1): twice the size, about half as many."""
        lead = self.b0 % 2                                     # an odd origin: pad one empty bucket first
        n = lead + self.m + (lead + self.m) % 2
        c = _empty(n)
        for k in _COLS:
            c[k][lead: lead + self.m] = self.cols[k][: self.m]
        merged = _combine({k: v[0::2] for k, v in c.items()}, {k: v[1::2] for k, v in c.items()})
        for k in _COLS:
            self.cols[k][:] = _EMPTY[k]
            self.cols[k][: n // 2] = merged[k]
        self.b0, self.m = (self.b0 - lead) // 2, n // 2
        self.size *= 2

    # ------------------------------------------------------------ reading
    def counted(self) -> "StepColumns":
        """A copy with the held-back last point counted (this object is unchanged)."""
        c = StepColumns(self.capacity)
        c.size, c.b0, c.m, c.points = self.size, self.b0, self.m, self.points
        c.cols = {k: v.copy() for k, v in self.cols.items()}
        if self.pending is not None:
            c._count(np.array([self.pending[0]]), np.array([self.pending[1]]))
        return c

    def coarsen(self, size: int) -> None:
        """Halve until buckets hold ``size`` steps (a power of two times this size)."""
        while self.size < size:
            self._halve()

    def held(self) -> int:
        """Numbers held (what the tests bound)."""
        return sum(v.size for v in self.cols.values())


def pool(columns: dict, max_cols: int):
    """The ranks' buckets side by side: ``(first step, last step, mean[R, C], max[R, C],
    step of max[R, C])`` with at most ``max_cols`` columns, from ``columns`` {rank: StepColumns}
    (rows in that order). Every rank is brought to the coarsest rank's bucket size; the buckets
    some rank has points in are grouped into at most ``max_cols`` columns of about as many
    buckets each. A cell is the mean (max) of the rank's finite values in its steps; a cell whose
    points are all non-finite holds one of them (NaN, +-Inf); no point there: NaN."""
    cols = [c.counted() for c in columns.values()]
    size = max((c.size for c in cols), default=1)
    for c in cols:
        c.coarsen(size)
    have = [c for c in cols if c.m]
    if not have:
        e = np.empty((len(cols), 0))
        return np.empty(0, np.int64), np.empty(0, np.int64), e, e, e
    lo = min(c.b0 for c in have)
    width = max(c.b0 + c.m for c in have) - lo
    grid = {k: np.full((len(cols), width), v) for k, v in _EMPTY.items()}
    for row, c in enumerate(cols):                             # a rank with no point keeps an empty row
        for k in _COLS:
            grid[k][row, c.b0 - lo: c.b0 - lo + c.m] = c.cols[k][: c.m]
    used = np.flatnonzero(grid["pts"].sum(axis=0) > 0)
    grid = {k: v[:, used] for k, v in grid.items()}
    n = len(used)
    if n > max_cols:
        starts = np.unique(np.linspace(0, n, max(1, max_cols) + 1).astype(np.int64)[:-1])
        grid = _reduce(grid, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(grid["n"] > 0, grid["sum"] / np.maximum(grid["n"], 1), grid["bad"])
    top = np.where(grid["n"] > 0, grid["hi"], grid["bad"])
    top_s = np.where(grid["n"] > 0, grid["hi_s"], np.nan)
    first = np.min(grid["s0"], axis=0).astype(np.int64)
    last = np.max(grid["s1"], axis=0).astype(np.int64)
    return first, last, mean, top, top_s
