"""[records x layers] tables read in row chunks, so the rules run in bounded memory.

A run with 500 parameters and a gradient record every step holds 200 MB of float32 per
field after 100 k steps; converting that to float64 or testing it with ``np.isfinite`` all
at once costs gigabytes. A ``Table`` reads ``chunk_rows`` rows at a time (about 4 MB), and
the rules either reduce each chunk at once (``summary``: per-column counts, maxima, first
non-finite row) or gather only the columns/rows they need (``columns``, ``rows``).
Tables come from a run (``Table.from_run``, through ``Run.layer_stat(name, start, stop)``)
or from an in-memory array (``as_table``, used by the rule tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_VALUES = 1 << 20      # values per chunk: 4 MB of float32, whatever the number of layers


@dataclass(frozen=True)
class ColumnSummary:
    """Per-column facts of a whole table, each computed chunk by chunk (arrays of length L)."""
    rows: int
    n_nan: np.ndarray            # NaN count
    n_finite: np.ndarray         # finite count
    any_nonzero: np.ndarray      # some finite value != 0
    max_non_nan: np.ndarray      # max over non-NaN values (Inf counts); -inf when there is none
    first_nan: np.ndarray        # first row with NaN, -1 if none
    first_inf: np.ndarray        # first row with +-Inf, -1 if none
    first_positive: np.ndarray   # first row with a value > 0, -1 if none

    @property
    def all_nan(self) -> np.ndarray:
        return self.n_nan == self.rows

    @property
    def all_zero(self) -> np.ndarray:
        """Every value is exactly 0 (no NaN, no Inf)."""
        return (self.n_finite == self.rows) & ~self.any_nonzero


def _first(mask, offset, known):
    """Update per-column first-row indices ``known`` (-1 = not yet) with a chunk's mask."""
    hit = mask.any(axis=0) & (known < 0)
    if hit.any():
        known[hit] = offset + np.argmax(mask[:, hit], axis=0)


class Table:
    """A per-layer statistic: ``steps`` [R], ``layers`` [L], values read in row chunks."""

    def __init__(self, read, n_rows: int, layers, steps=None, *, start: int = 0, chunk_rows: int | None = None,
                 blocks=None):
        self._read = read         # read(a, b) -> (steps [b - a] or None, values [b - a, L]) of absolute rows
        # blocks(a, b, rows) -> iterator of (steps, values) blocks over absolute rows [a, b), for passes
        self._iter_blocks = blocks
        self._start = int(start)
        self.n_rows = int(n_rows)
        self.layers = list(layers)
        self.chunk_rows = int(chunk_rows or max(64, CHUNK_VALUES // max(1, len(self.layers))))
        self._steps = None if steps is None else np.asarray(steps, dtype=np.int64)
        self._summary = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_run(cls, run, stat: str, n_rows: int, chunk_rows: int | None = None) -> Table:
        """A table of ``run.layer_stat(stat)`` fixed at ``n_rows`` records (a live run keeps growing)."""
        def read(a, b):
            ls = run.layer_stat(stat, a, b)
            return ls.steps, ls.values

        def blocks(a, b, rows):   # passes over the table: the run's bounded-read iterator
            for ls in run.layer_stat_chunks(stat, a, b, rows=rows):
                yield ls.steps, ls.values

        # Steps are taken from the first pass over the values (Run has no steps-only read).
        return cls(read, n_rows, run.layer_stat(stat, 0, 0).layers, chunk_rows=chunk_rows, blocks=blocks)

    def head(self, stop: int) -> Table:
        """The first ``stop`` rows (a view: nothing is read)."""
        stop = max(0, min(int(stop), self.n_rows))
        return Table(self._read, stop, self.layers, None if self._steps is None else self._steps[:stop],
                     start=self._start, chunk_rows=self.chunk_rows, blocks=self._iter_blocks)

    # ------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, len(self.layers)

    def __len__(self) -> int:
        return self.n_rows

    @property
    def steps(self) -> np.ndarray:
        if self._steps is None:     # read with the first pass over the values (one pass, not two)
            self.summary
        return self._steps

    # ------------------------------------------------------------ passes
    def _blocks(self, start: int = 0, stop: int | None = None):
        stop = self.n_rows if stop is None else min(int(stop), self.n_rows)
        a = max(0, int(start))
        if self._iter_blocks is not None:
            for steps, values in self._iter_blocks(self._start + a, self._start + stop, self.chunk_rows):
                yield a, steps, np.asarray(values, dtype=np.float32)
                a += len(values)
            return
        for a in range(a, stop, self.chunk_rows):
            b = min(stop, a + self.chunk_rows)
            steps, values = self._read(self._start + a, self._start + b)
            yield a, steps, np.asarray(values, dtype=np.float32)

    def chunks(self, start: int = 0, stop: int | None = None):
        """(first row, float32 block) over rows [start, stop), ``chunk_rows`` rows at a time."""
        for a, _, block in self._blocks(start, stop):
            yield a, block

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 rows [start, stop)."""
        return np.asarray(self._read(self._start + start, self._start + min(stop, self.n_rows))[1], dtype=np.float32)

    @property
    def summary(self) -> ColumnSummary:
        """Per-column counts, maxima and first non-finite rows, in one chunked pass (cached)."""
        if self._summary is None:
            self._summary = self._scan()
        return self._summary

    def _scan(self) -> ColumnSummary:
        n = len(self.layers)
        n_nan = np.zeros(n, np.int64)
        n_finite = np.zeros(n, np.int64)
        any_nonzero = np.zeros(n, bool)
        max_non_nan = np.full(n, -np.inf, np.float32)
        first_nan, first_inf, first_pos = (np.full(n, -1, np.int64) for _ in range(3))
        steps, seen = [], 0
        for a, block_steps, block in self._blocks():
            steps.append(block_steps)
            seen += len(block)
            if not len(block):
                continue
            finite = np.isfinite(block)
            if finite.all():                 # the usual chunk: only what is not known yet
                n_finite += len(block)
                np.maximum(max_non_nan, block.max(axis=0), out=max_non_nan)
                todo = ~any_nonzero
                if todo.any():
                    any_nonzero[todo] = (block[:, todo] != 0).any(axis=0)
            else:
                nan = np.isnan(block)
                n_nan += nan.sum(axis=0)
                n_finite += finite.sum(axis=0)
                any_nonzero |= (finite & (block != 0)).any(axis=0)
                np.maximum(max_non_nan, np.where(nan, -np.inf, block).max(axis=0), out=max_non_nan)
                _first(nan, a, first_nan)
                _first(~finite & ~nan, a, first_inf)
            todo = first_pos < 0
            if todo.any():
                with np.errstate(invalid="ignore"):
                    hit = block[:, todo] > 0
                found = hit.any(axis=0)
                cols = np.flatnonzero(todo)[found]
                first_pos[cols] = a + np.argmax(hit[:, found], axis=0)
        if self._steps is None:
            self._steps = np.concatenate(steps).astype(np.int64) if steps else np.empty(0, np.int64)
        # rows seen, not n_rows: a resumed run's reads leave out the rows a later session wrote
        # again, and a never-called module's all-NaN column then read as "NaN from step 0"
        return ColumnSummary(seen, n_nan, n_finite, any_nonzero, max_non_nan, first_nan, first_inf, first_pos)

    def columns(self, cols, start: int = 0, stop: int | None = None) -> np.ndarray:
        """float32 [rows x len(cols)] of the chosen columns, gathered chunk by chunk."""
        cols = list(cols)
        stop = self.n_rows if stop is None else min(int(stop), self.n_rows)
        # NaN, not np.empty: a resumed run's reads leave out rows a later session wrote again, and
        # the rows never filled held whatever the memory held (a cast warning, garbage ratios)
        out = np.full((max(0, stop - max(0, start)), len(cols)), np.nan, np.float32)
        for a, block in self.chunks(start, stop):
            out[a - start: a - start + len(block)] = block[:, cols]
        return out

    def rows(self, idx) -> np.ndarray:
        """float32 [len(idx) x L] of the chosen rows (any order, repeats allowed)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.full((len(idx), len(self.layers)), np.nan, np.float32)
        if idx.size == 0:
            return out
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        lo, hi = int(sorted_idx[0]), int(sorted_idx[-1]) + 1
        for a, block in self.chunks(lo, hi):
            i0, i1 = np.searchsorted(sorted_idx, [a, a + len(block)])
            if i1 > i0:
                out[order[i0:i1]] = block[sorted_idx[i0:i1] - a]
        return out


def as_table(matrix, steps=None, layers=None, chunk_rows: int | None = None) -> Table:
    """``matrix`` as a Table: a Table is returned as it is, an array is wrapped (views, no copy)."""
    if isinstance(matrix, Table):
        return matrix
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"a per-layer table must be 2-D [records x layers], got shape {m.shape}")
    if steps is None:
        steps = np.arange(m.shape[0])
    if len(steps) != m.shape[0]:
        raise ValueError(f"{len(steps)} steps for a table of {m.shape[0]} records")
    return Table(lambda a, b: (None, m[a:b]), m.shape[0], layers if layers is not None else range(m.shape[1]), steps,
                 chunk_rows=chunk_rows)
