"""The Ranks tab's heatmaps drawn from bounded step buckets per rank and metric, fed only the rows
each rank's file added since the last read (app/rank_view.py ``columns``/``heats``,
app/step_columns.py). Real rank files, written live by the recorder's file writer (and by the
Recorder for a resumed run), read back as the app opens them (``open_ranks(keep_points=False)``).
No Qt."""
from __future__ import annotations

import types

import numpy as np
import pytest

from trainspect.analysis.ranks import align, open_ranks
from trainspect.analysis.run import Run
from trainspect.app import rank_view
from trainspect.recorder import format as fmt
from tests.rank_runs import append_columns, live_rank_writers

LOSS, TIME = "train/loss", fmt.SYS_STEP_TIME


@pytest.fixture
def ranks(tmp_path):
    """Two live rank files (loss and step time), and the app's view of them."""
    path = tmp_path / "exp.h5"
    writers = live_rank_writers(path, [LOSS, TIME])
    state = types.SimpleNamespace(writers=writers, path=path, ranked=None)

    def open_():
        state.ranked = open_ranks(path, keep_points=False)
        state.entry = types.SimpleNamespace(run=state.ranked.primary)   # what rank_view keeps its state on
        return state.ranked
    state.open = open_
    yield state
    if state.ranked is not None:
        state.ranked.primary.close()
        state.ranked.close()
    for w in writers:
        w.close()


def _write(writer, steps, loss, step_time) -> None:
    append_columns(writer, steps, loss, step_time)
    writer.flush(int(np.max(steps)))


def _refresh(ranked) -> None:
    for run in ranked.runs.values():
        run.refresh()


def _old_pool(m, max_cols):
    """What the Ranks tab drew before (rank_view.pool_columns, d13dd1b): the full matrix pooled
    by step index, each column the mean of its finite values."""
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_run_that_fits_the_columns_is_drawn_as_the_full_read_drew_it(ranks, seed):
    """Written in live pieces, with steps one rank skipped, a step logged twice in a row (the
    last value counts) and a NaN: the heatmaps equal the old full-matrix pooling, one column per
    step while the steps fit, pooled means when they do not (every bucket one step)."""
    rng = np.random.default_rng(seed)
    n = 1500
    per_rank = []
    for rank in range(2):
        steps = np.sort(rng.choice(n, size=n - 100 * rank, replace=False))
        steps = np.insert(steps, 700, steps[700])                 # step logged again right after itself
        loss, st = rng.normal(2.0, 0.3, len(steps)), rng.gamma(2.0, 0.05, len(steps))
        loss[rng.integers(len(steps))] = np.nan
        per_rank.append((steps, loss, st))
    ranked = None
    for piece in np.array_split(np.arange(len(per_rank[0][0])), 4):   # live: fed as the rows come
        for rank, (steps, loss, st) in enumerate(per_rank):
            part = piece[piece < len(steps)]
            _write(ranks.writers[rank], steps[part], loss[part], st[part])
        ranked = ranked or ranks.open()
        _refresh(ranked)
        heats = rank_view.heats(ranks.entry, ranked, [LOSS, TIME], 2000)
    for name in (LOSS, TIME):
        full = align({r: run.scalar(name) for r, run in ranked.runs.items()})   # one full read each
        for max_cols, heat in ((2000, heats[name]), (300, rank_view.heats(ranks.entry, ranked, [name], 300)[name])):
            first, last, values = _old_pool(full, max_cols)
            assert heat.ranks == [0, 1]
            np.testing.assert_array_equal(heat.first, first)
            np.testing.assert_array_equal(heat.last, last)
            np.testing.assert_allclose(heat.mean, values, equal_nan=True)
            if max_cols == 2000:                      # one step a column: the max is the value
                np.testing.assert_allclose(heat.top, values, equal_nan=True)


SPIKE = 123_457


def _timing(rank, a, b):
    steps = np.arange(a, b)
    loss = 2.0 * np.exp(-steps / 50_000.0) + 0.05 * rank
    st = 0.1 + 0.001 * np.sin(steps * 0.37) + 0.002 * rank
    if rank == 1 and a <= SPIKE < b:
        st[SPIKE - a] = 4.0                           # one slow step on one rank
    return steps, loss, st


def test_a_growing_run_reads_only_its_new_rows_and_holds_bounded_buckets(ranks, monkeypatch):
    """A 2-rank run grown 20k -> 420k steps, the heatmaps read after each piece: every read takes
    only the rows the files added since (one pass per rank for both metrics), what is held stays
    under the buckets' bound, and the picture is right: each cell is the mean (max) of that
    rank's values over the column's steps, and rank 1's one-step stall is its column's max."""
    read = []
    real_rows, real_once = Run.scalar_rows, Run._read_once

    def scalar_rows(self, names, start, stop=None, latest=False):
        stop_ = self.scalar_rows_seen if stop is None else min(stop, self.scalar_rows_seen)
        read.append(max(0, stop_ - start))
        return real_rows(self, names, start, stop, latest)

    def read_once(self, tag):
        read.append(self.scalar_rows_seen)            # a whole-file scan
        return real_once(self, tag)

    monkeypatch.setattr(Run, "scalar_rows", scalar_rows)
    monkeypatch.setattr(Run, "_read_once", read_once)
    held, ranked = [], None
    for a, b in [(0, 20_000), *((lo, lo + 40_000) for lo in range(20_000, 400_000, 40_000))]:
        for rank, w in enumerate(ranks.writers):
            _write(w, *_timing(rank, a, b))
        ranked = ranked or ranks.open()
        _refresh(ranked)
        read.clear()
        heats = rank_view.heats(ranks.entry, ranked, [LOSS, TIME], 1800)
        assert sum(read) == 2 * 2 * (b - a) and len(read) == 2     # the new rows, once per rank
        held.append(rank_view.column_held(ranks.entry))
    bound = 4 * rank_view.COLUMN_CAPACITY * 8          # 2 ranks x 2 metrics, 8 numbers a bucket
    assert max(held) <= bound

    read.clear()
    full = {name: {r: run.scalar(name) for r, run in ranked.runs.items()} for name in (LOSS, TIME)}
    heat = heats[TIME]
    assert heat.first[0] == 0 and heat.last[-1] == 419_999 and len(heat.first) <= 1800
    for name in (LOSS, TIME):
        h = heats[name]
        for i, rank in enumerate(h.ranks):
            s = full[name][rank]
            lo = np.searchsorted(s.steps, h.first)
            hi = np.searchsorted(s.steps, h.last, side="right")
            sums = np.add.reduceat(s.values, lo)
            np.testing.assert_allclose(h.mean[i], sums / (hi - lo))
            np.testing.assert_array_equal(h.top[i], np.maximum.reduceat(s.values, lo))
    col = int(np.searchsorted(heat.last, SPIKE))
    assert heat.first[col] <= SPIKE <= heat.last[col]
    assert heat.top[1, col] == 4.0 and heat.top_step[1, col] == SPIKE      # the stall, where it was
    assert heat.top[0, col] < 0.2 and heat.mean[1, col] < 0.2             # a mean over the column hides it


RESUMED = """
import sys
from trainspect.recorder import Recorder
path, lo, hi, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with Recorder(path, resume=True, stats_every=0, hist_every=0, snapshot_every=0) as rec:
    for step in range(lo, hi):
        rec.log({%r: offset + 0.01 * step}, step=step)
""" % LOSS


def test_a_resumed_run_shows_each_step_once_also_when_resumed_while_shown(tmp_path, monkeypatch):
    """A 2-rank job crashed after step 299 and restarted from its checkpoint at step 150 (both
    ranks, Recorder(resume=True)), crashing again after 259; opened (read in blocks of 64 rows, so
    a block ends inside the first session), then rank 1 restarts once more from step 200 while
    shown. The steps written again replace the earlier sessions' (FORMAT.md, *Segments*): every
    step is in the heatmap once, with its latest value, as a full read of the files has it."""
    import os
    import subprocess
    import sys

    from trainspect.recorder import Recorder

    path = tmp_path / "exp.h5"
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def resume(rank, lo, hi, offset):
        subprocess.run([sys.executable, "-c", RESUMED, str(path), str(lo), str(hi), str(offset)], check=True,
                       timeout=120, env=dict(os.environ, RANK=str(rank)))

    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        with Recorder(path, stats_every=0, hist_every=0, snapshot_every=0) as rec:
            for step in range(300):
                rec.log({LOSS: rank + 0.01 * step}, step=step)
        resume(rank, 150, 260, 10.0 + rank)
    monkeypatch.setattr(rank_view, "FEED_ROWS", 64)
    ranked = open_ranks(path, keep_points=False)
    entry = types.SimpleNamespace(run=ranked.primary)

    def check(steps):
        heat = rank_view.heats(entry, ranked, [LOSS], 2000)[LOSS]
        full = align({r: run.scalar(LOSS) for r, run in ranked.runs.items()})
        np.testing.assert_array_equal(full.steps, np.arange(steps))
        np.testing.assert_array_equal(heat.first, full.steps)
        np.testing.assert_allclose(heat.mean, full.values, equal_nan=True)
        return heat

    try:
        heat = check(260)
        assert heat.mean[1, 200] == 11.0 + 0.01 * 200      # the restarted session's value, alone
        resume(1, 200, 320, 20.0)                           # rank 1 restarts again, while shown
        _refresh(ranked)
        heat = check(320)
        assert heat.mean[1, 250] == 20.0 + 0.01 * 250 and heat.mean[1, 199] == 11.0 + 0.01 * 199
        assert heat.mean[0, 250] == 10.0 + 0.01 * 250 and np.isnan(heat.mean[0, 300])
    finally:
        ranked.primary.close()
        ranked.close()
