"""The largest step of a layer record group that no later writer session superseded.

A run resumed from a checkpoint at step 500 after crashing at step 800 still holds the dead
session's records 501..800: they are superseded (FORMAT.md, *Segments*) and must not count
as the run's last step. ``LatestStep`` finds the largest step that counts, reading the step
column block by block and incrementally (a later call reads only the rows added since), so
status polls of a resumed run stay bounded in memory and cheap.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder import format as fmt

READ_BLOCK = 1_000_000   # rows per read (8 MB of int64 steps)


def _same(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


class LatestStep:
    """Incremental ``max(step)`` over the rows of one series that count (fmt.latest_only's rule)."""

    def __init__(self):
        self.starts = None     # first row of each session, as last read
        self.first = None      # smallest step each session wrote (inf: none)
        self.first_rows = 0    # rows ``first`` covers
        self.cut = None        # the cut ``top`` was computed with
        self.rows = 0          # rows ``top`` covers
        self.top = -1

    def update(self, steps_ds, n: int, starts: np.ndarray) -> int:
        """The largest counted step of rows [0, n) of ``steps_ds``; ``starts``: each session's first row."""
        if not _same(starts, self.starts) or n < self.first_rows:
            self.__init__()
            self.starts = starts
            self.first = np.full(len(starts), np.inf)
        for a in range(self.first_rows, n, READ_BLOCK):
            b = min(n, a + READ_BLOCK)
            np.minimum.at(self.first, fmt.row_sessions(starts, np.arange(a, b)), steps_ds[a:b])
            self.first_rows = b
        cut = fmt.later_cut(self.first)
        if self.cut is None or not np.array_equal(cut, self.cut):
            self.cut, self.rows, self.top = cut, 0, -1   # a session began earlier than thought: count again
        for a in range(self.rows, n, READ_BLOCK):
            b = min(n, a + READ_BLOCK)
            steps = steps_ds[a:b]
            kept = steps[steps < cut[fmt.row_sessions(starts, np.arange(a, b))]]
            if len(kept):
                self.top = max(self.top, int(kept.max()))
            self.rows = b
        return self.top
