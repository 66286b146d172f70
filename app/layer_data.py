"""Level-of-detail access to a per-layer statistic ([records x layers]) of one run.

Memory stays proportional to what is shown: the table is read in row chunks and max-pooled
into at most a few thousand columns; only the step column, the pooled overview and one
chunk are ever held. Zoomed views re-read just the rows in view.
"""
from __future__ import annotations

import numpy as np

from trainspect.analysis.frozen import frozen_param_names

from . import vocab as fmt
from .lod import RowPooler, pool_columns
from .report.content import meaningful_rows

CHUNK_BYTES = 16 * 1024 * 1024   # one read of the table at a time
OVERVIEW_COLUMNS = 2048          # finer than any screen: zooming in a little reuses it


class LayerStatSource:
    def __init__(self, run, stat: str):
        if stat not in fmt.LAYER_STATS:
            raise KeyError(f"unknown layer statistic {stat!r}")
        self.run = run
        self.stat = stat
        self.group = fmt.LAYER_STATS[stat][0]
        head = run.layer_stat(stat, 0, 0)
        # Parameters frozen on purpose (a LoRA base: 28 of 32 rows) have no gradient and no
        # update: their rows are left out, or the rows that train drown among empty ones.
        frozen = frozen_param_names(run.meta, run.params) if self.group != fmt.ACTS else None
        keep = [i for i, name in enumerate(head.layers) if not frozen or name not in frozen]
        keep = keep or list(range(len(head.layers)))
        self.hidden = len(head.layers) - len(keep)      # frozen parameters not shown
        # Dead units and saturation only of the modules where they mean something (the report's
        # and the advisor's rule): a healthy LayerNorm or logit output read as an alarm.
        meaningful, self.only = meaningful_rows(run, stat)
        if meaningful is not None:
            keep = [i for i in keep if head.layers[i] in meaningful]
            self.hidden = len(head.layers) - len(keep)
        self._keep = None if not self.hidden else np.asarray(keep, dtype=np.intp)
        self.layers: list[str] = [head.layers[i] for i in keep]
        self.n_rows = int(run.record_count(self.group))
        # A resumed run's reads leave out the records a later session wrote again: the rows
        # shown are numbered here, the file's rows where they are read (_chunks).
        self._file_rows = run.shown_records(self.group)
        if self._file_rows is not None:
            self.n_rows = len(self._file_rows)
        n_layers = max(1, len(self.layers))
        self.chunk_rows = max(256, CHUNK_BYTES // (4 * n_layers))
        self.steps = np.empty(0, np.int64)
        self.overview = np.empty((len(self.layers), 0))   # [layers, buckets]: image orientation
        self.overview_edges = np.zeros(1, np.int64)
        self._columns: dict[int, np.ndarray] = {}
        self._last_overview_view = None
        self._build_overview()
        self.levels_cache: dict = {}

    def _chunks(self, r0: int, r1: int):
        """(first row, (steps, values of the shown layers)) per chunk of rows r0..r1 (rows as
        shown: in a resumed run, not the file's)."""
        a = r0
        rows = self._file_rows
        if rows is not None and r1 > r0:
            r0, r1 = int(rows[r0]), int(rows[r1 - 1]) + 1
        for part in self.run.layer_stat_chunks(self.stat, r0, r1, rows=self.chunk_rows):
            yield a, (part.steps, part.values if self._keep is None else part.values[:, self._keep])
            a += len(part.steps)

    def _build_overview(self) -> None:
        pooler = RowPooler(self.n_rows, len(self.layers), OVERVIEW_COLUMNS)
        steps = []
        for a, (part_steps, values) in self._chunks(0, self.n_rows):
            pooler.add(a, values)
            steps.append(part_steps)
        self.steps = np.concatenate(steps) if steps else np.empty(0, np.int64)
        self.n_rows = len(self.steps)
        # Stored layers x buckets (buckets contiguous): re-pooling along the step axis is
        # 3x faster this way and the result is already in the image's row-major order.
        self.overview = np.ascontiguousarray(pooler.result().T)
        self.overview_edges = pooler.edges

    def image(self, step_lo: float | None, step_hi: float | None, n_px: int, exact: bool = True):
        """Max-pooled image [layers, buckets] of the rows whose step is in [lo, hi].

        Returns ``(image, first_steps, last_steps)`` (the step span of each bucket).
        ``exact=False`` answers from the in-memory overview whenever it has at least an
        eighth of the pixel columns (instant, coarser); the panel refines a moment later.
        """
        got = self.cached_image(step_lo, step_hi, n_px, exact)
        if got is not None:
            return got
        r0, r1 = self._row_span(step_lo, step_hi)
        n_px = max(1, int(n_px))
        pooler = RowPooler(r1 - r0, len(self.layers), n_px)
        for a, (_, values) in self._chunks(r0, r1):
            pooler.add(a - r0, values)
        pe = pooler.edges + r0
        return np.ascontiguousarray(pooler.result().T), self.steps[pe[:-1]], self.steps[pe[1:] - 1]

    def _row_span(self, step_lo, step_hi) -> tuple[int, int]:
        r0 = 0 if step_lo is None else int(np.searchsorted(self.steps, step_lo, side="left"))
        r1 = self.n_rows if step_hi is None else int(np.searchsorted(self.steps, step_hi, side="right"))
        return max(0, r0 - 1), min(self.n_rows, r1 + 1)   # one row of margin: no gap at edges

    def cached_image(self, step_lo: float | None, step_hi: float | None, n_px: int, exact: bool = True):
        """What :meth:`image` answers from memory (no file access), or None when it needs the
        file: the GUI thread draws this at once and leaves the rest to a background read."""
        if self.n_rows == 0:
            return np.empty((len(self.layers), 0)), np.empty(0), np.empty(0)
        r0, r1 = self._row_span(step_lo, step_hi)
        n_px = max(1, int(n_px))
        e = self.overview_edges
        b0 = int(np.searchsorted(e, r0, side="right") - 1)
        b1 = int(np.searchsorted(e, r1, side="left"))
        if not ((b1 - b0) >= n_px or (not exact and r1 - r0 > n_px and b1 - b0 >= n_px // 8)):
            return None
        # The overview is as fine as the screen here: no file access at all.
        key = (b0, b1, n_px)
        last_view = self._last_overview_view
        if last_view is not None and last_view[0] == key:
            return last_view[1]   # panning a zoomed-out view: same buckets
        img, first, last = self.overview[:, b0:b1], self.steps[e[b0:b1]], self.steps[e[b0 + 1:b1 + 1] - 1]
        if img.shape[1] > n_px:  # max of maxes is exact: pool the overview down to the pixels
            img, pe = pool_columns(img, n_px)
            first, last = first[pe[:-1]], last[pe[1:] - 1]
        self._last_overview_view = (key, (img, first, last))
        return img, first, last

    def is_exact(self, step_lo, step_hi, n_px: int) -> bool:
        """Whether the fast (overview) answer for this range is already the exact one."""
        if self.n_rows == 0 or step_lo is None:
            return True
        r0 = int(np.searchsorted(self.steps, step_lo, side="left"))
        r1 = int(np.searchsorted(self.steps, step_hi, side="right"))
        e = self.overview_edges
        b0 = int(np.searchsorted(e, max(0, r0 - 1), side="right") - 1)
        b1 = int(np.searchsorted(e, min(self.n_rows, r1 + 1), side="left"))
        return (b1 - b0) >= n_px or (r1 - r0) <= n_px

    def column(self, layer_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution series (steps, values) of one layer, read chunk by chunk."""
        if layer_index not in self._columns:
            parts = [values[:, layer_index].astype(np.float64) for _, (_, values) in self._chunks(0, self.n_rows)]
            self._columns[layer_index] = np.concatenate(parts) if parts else np.empty(0)
        return self.steps, self._columns[layer_index]


def histogram_series(run, kind: str, layer_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer's histograms over time: ``(steps[R], counts[R, bins], ranges[R, 2])``.

    Read in row blocks keeping only that layer, so memory is R x bins, not R x layers x bins.
    """
    steps, counts, ranges = [], [], []
    for h in run.histogram_chunks(kind):
        steps.append(h.steps)
        counts.append(h.counts[:, layer_index])
        ranges.append(h.ranges[:, layer_index])
    if not steps:
        return np.empty(0, np.int64), np.empty((0, fmt.HIST_BINS)), np.empty((0, 2))
    return np.concatenate(steps), np.concatenate(counts), np.concatenate(ranges)


def snapshot_series(run, slot: int) -> tuple[np.ndarray, np.ndarray]:
    """One weight matrix's snapshots: ``(steps[R], data[R, 32, 32])`` (NaN outside its shape)."""
    steps, data = [], []
    for s in run.snapshot_chunks():
        steps.append(s.steps)
        data.append(s.data[:, slot])
    if not steps:
        return np.empty(0, np.int64), np.empty((0, fmt.SNAP_SIZE, fmt.SNAP_SIZE))
    return np.concatenate(steps), np.concatenate(data)
