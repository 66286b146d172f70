"""A bounded view of one series, fed block by block: what the advisor reads of a long run.

Up to ``capacity`` points the view holds every point. Beyond, it holds two things:

- a plain sample: every ``j``-th point (``j`` doubles whenever the sample fills two thirds of
  the capacity), which keeps the curve's levels: medians, quantiles of the noise, trends;
- the extremes: of each bucket of ``4 j`` consecutive points its smallest and its largest
  value, in their order (a non-finite value takes the smallest's place), so that a spike, a
  dip or a NaN is never lost.

The extremes do not move the median: of 4j values the smallest is below the median and the
largest above it almost always, and there are as many of each. The bucket being filled is
kept as aligned sub-buckets of 2j, j, ... 4 points (the binary digits of its length) plus up
to 3 points as they are, so a view is the same however the points came in (in one block or
many: ``tail`` and a later ``diagnose`` agree). The first and last points, the first
non-finite one and the first positive one (a count such as ``sys/nonfinite_grads`` turning
non-zero) are kept as they were, and the NaN/Inf counts are exact. Memory: about
``capacity`` points, whatever the length of the run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = (np.int64, np.int64, np.float64)   # a point: its index in the series, step, value
SAMPLES_PER_BUCKET = 4                      # sampled points per bucket of extremes


@dataclass(frozen=True)
class SeriesView:
    """One metric as the advisor reads it (``Run.scalar_views``)."""
    steps: np.ndarray   # int64, increasing row order, as Run.scalar
    values: np.ndarray  # float64
    points: int         # points of the series (len(steps) is fewer once it is decimated)
    n_nan: int          # NaN values among all the points
    n_inf: int          # +-Inf values among all the points
    # Each kept point's position in the series, and the sample's stride j (1: every point): the
    # plain sample is the points at positions divisible by j. Rank views align on it (ranks.py).
    index: np.ndarray | None = None
    stride: int = 1

    def __len__(self):
        return len(self.steps)


def _empty():
    return [np.empty(0, d) for d in DTYPES]


def _join(*parts):
    return [np.concatenate(c) for c in zip(*parts)]


def _extremes(cols, width: int):
    """Points in groups of ``width`` -> two per group, in order: the smallest value (or the first
    non-finite one) and the largest finite one (the same point twice where they coincide)."""
    m = len(cols[0]) // width
    shaped = [c[: m * width].reshape(m, width) for c in cols]
    values = shaped[2]
    finite = np.isfinite(values)
    if finite.all():   # the usual case: no masked copies
        lo, hi = np.argmin(values, axis=1), np.argmax(values, axis=1)
    else:
        lo = np.argmin(np.where(finite, values, np.inf), axis=1)
        hi = np.argmax(np.where(finite, values, -np.inf), axis=1)
        bad = ~finite.all(axis=1)
        lo[bad] = np.argmax(~finite[bad], axis=1)
        hi[bad] = np.where(finite[bad].any(axis=1), hi[bad], lo[bad])
    pick = np.sort(np.stack([lo, hi], axis=1), axis=1)
    rows = np.arange(m)[:, None]
    return [c[rows, pick].ravel() for c in shaped]


def _lowbit(p: int) -> int:
    return p & -p


class _Extremes:
    """Smallest and largest point of each bucket of ``k`` points (k a power of 2, at least 4)."""

    def __init__(self, k: int):
        self.k = k
        self.done = _empty()    # two points per complete bucket
        self.parts: list = []   # the bucket being filled: (size, two points) of aligned sub-buckets, largest first
        self.raw = _empty()     # ... then its last points (fewer than 4, from a multiple of 4 on)

    def add(self, cols) -> None:
        cols = _join(self.raw, cols)
        total, pos = len(cols[0]), 0
        start = int(cols[0][0]) if total else 0
        while total - pos >= 4:   # the largest aligned pieces
            p = start + pos
            size = min(_lowbit(p) if p else self.k, self.k)
            whole = (total - pos) // size * size if size == self.k else 0
            if whole:   # at a bucket boundary: every whole bucket at once
                self.done = _join(self.done, _extremes([c[pos:pos + whole] for c in cols], size))
                pos += whole
                continue
            while size > total - pos:
                size //= 2
            self._push(size, _extremes([c[pos:pos + size] for c in cols], size))
            pos += size
        self.raw = [c[pos:].copy() for c in cols]

    def _push(self, size: int, kept) -> None:
        """A sub-bucket of the bucket being filled; two of one size make one of twice the size."""
        self.parts.append((size, kept))
        while len(self.parts) > 1 and self.parts[-1][0] == self.parts[-2][0]:
            (s, a), (_, b) = self.parts.pop(-2), self.parts.pop()
            self.parts.append((2 * s, _extremes(_join(a, b), 4)))
        if self.parts[-1][0] == self.k:
            self.done = _join(self.done, self.parts.pop()[1])

    def double(self) -> None:
        """Buckets twice as long: two buckets' extremes make one's."""
        if len(self.done[0]) // 2 % 2:   # an odd last bucket starts the bucket being filled
            self.parts.insert(0, (self.k, [d[-2:] for d in self.done]))
            self.done = [d[:-2] for d in self.done]
        self.done = _extremes(self.done, 4)
        self.k *= 2

    def points(self) -> list:
        return [self.done, *(kept for _, kept in self.parts), self.raw]


class Decimated:
    """Feed ``add(steps, values)`` in series order; ``view()`` gives the bounded SeriesView."""

    def __init__(self, capacity: int = 1 << 17):
        if capacity < 12:
            raise ValueError(f"capacity must be at least 12, not {capacity}")
        self.capacity = capacity
        self.j = 1                  # every j-th point is in ``sample`` (1: every point, nothing else kept)
        self.sample = _empty()
        self.extremes: _Extremes | None = None
        self.n = self.n_nan = self.n_inf = 0
        self.marks: dict = {}       # "first", "last", "nonfinite", "positive" -> a point kept as it was

    def add(self, steps, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        m = len(values)
        if not m:
            return
        cols = [np.arange(self.n, self.n + m, dtype=np.int64), np.asarray(steps, dtype=np.int64), values]
        self.n += m
        self._count(cols)
        if self.j == 1:
            self.sample = _join(self.sample, cols)
            if len(self.sample[0]) <= self.capacity:
                return
            cols, self.sample = self.sample, _empty()   # full: from now on a sample and the extremes
            self.j = 2
            self.extremes = _Extremes(SAMPLES_PER_BUCKET * self.j)
        first = -int(cols[0][0]) % self.j   # the first point of the block whose index is a multiple of j
        self.sample = _join(self.sample, [c[first::self.j] for c in cols])
        self.extremes.add(cols)
        while len(self.sample[0]) > self.capacity * 2 // 3:
            self.j *= 2
            keep = self.sample[0] % self.j == 0
            self.sample = [c[keep] for c in self.sample]
            self.extremes.double()

    def _count(self, cols) -> None:
        values = cols[2]
        finite = np.isfinite(values)
        if not finite.all():
            nan = np.isnan(values)
            self.n_nan += int(nan.sum())
            self.n_inf += int((~finite & ~nan).sum())
            self._mark("nonfinite", cols, ~finite)
        self._mark("positive", cols, values > 0)
        self._mark("first", cols, np.ones(1, bool))
        self.marks["last"] = [c[-1:].copy() for c in cols]   # (copies: a slice would hold the whole block)

    def _mark(self, key, cols, mask) -> None:
        if key not in self.marks and mask.any():
            i = int(np.argmax(mask))
            self.marks[key] = [c[i:i + 1].copy() for c in cols]

    def view(self) -> SeriesView:
        parts = [self.sample, *(self.extremes.points() if self.extremes else []), *self.marks.values()]
        idx, steps, values = _join(*parts)
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        keep = np.ones(len(ordered), bool)
        keep[1:] = ordered[1:] != ordered[:-1]
        keep = order[keep]
        return SeriesView(steps[keep], values[keep], self.n, self.n_nan, self.n_inf, idx[keep], self.j)
