"""The app's memory follows what it shows on a distributed run too: the rank bands behind the
scalar curves read each rank through a bounded envelope, fed the new rows as the run grows,
and the sibling rank files hold no points (app/rank_view.py, app/gui/widgets/rank_band.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from tests.gui_helpers import WAIT_S, open_runs  # noqa: E402
from tests.rank_runs import append_columns, live_rank_writers  # noqa: E402

METRIC = "train/loss"
SPIKE = 187_654        # a one-step spike on rank 1 only


def _write(writer, rank: int, lo: int, hi: int) -> None:
    steps = np.arange(lo, hi)
    loss = 2.0 * np.exp(-steps / 50_000.0) + 0.01 * np.sin(steps * 0.37) + 0.05 * rank
    if rank == 1 and lo <= SPIKE < hi:
        loss[SPIKE - lo] = 40.0
    append_columns(writer, steps, loss, 1.0 - loss / 3.0)
    writer.flush(hi - 1)


@pytest.fixture
def two_rank_writers(tmp_path):
    path = tmp_path / "exp.h5"
    writers = live_rank_writers(path, [METRIC, "train/acc"])
    yield writers, path
    for w in writers:
        w.close()


def _band(band):
    x, lo = band.low.getData()
    _, hi = band.high.getData()
    return (np.asarray(a) if a is not None else np.empty(0) for a in (x, lo, hi))


def _grow(window, qtbot, writers, lo: int, hi: int, block: int = 50_000) -> None:
    for a in range(lo, hi, block):
        for rank, w in enumerate(writers):
            _write(w, rank, a, min(hi, a + block))
    window.runs.poll()                       # the live tail: rank 0 refreshed, then the band reads
    assert window.wait_loaded(WAIT_S)


def test_a_two_rank_run_growing_tenfold_keeps_the_bands_bounded(window, qtbot, two_rank_writers):
    from trainspect.app import rank_view

    writers, path = two_rank_writers
    for rank, w in enumerate(writers):
        _write(w, rank, 0, 30_000)
    window.view.set_metrics([METRIC])
    entry = open_runs(window, [path])[0]
    bands = window.scalars.bands.bands
    qtbot.waitUntil(lambda: (METRIC, entry.key) in bands and len(next(_band(bands[(METRIC, entry.key)]))) > 0,
                    timeout=int(WAIT_S * 1000))
    files = entry._rank_files
    feeds_small = {k: (f.env.held(), f.env.m) for k, f in files.feeds.items()}
    assert set(feeds_small) == {(0, METRIC), (1, METRIC)}

    _grow(window, qtbot, writers, 30_000, 300_000)
    band = bands[(METRIC, entry.key)]
    qtbot.waitUntil(lambda: all(f.env.points == 300_000 for f in files.feeds.values())
                    and not window.runs.io.outstanding(), timeout=int(WAIT_S * 1000))
    window.wait_loaded(WAIT_S)

    # every point of both ranks went through the bands, and what they hold did not grow with it
    for key, feed in files.feeds.items():
        held_small, buckets_small = feeds_small[key]
        assert feed.env.points == 300_000 and feed.env.last_step == 299_999
        bound = rank_view.BAND_CAPACITY * len(feed.env.cols)
        assert max(held_small, feed.env.held()) <= bound
        assert max(buckets_small, feed.env.m) <= rank_view.BAND_CAPACITY
    assert rank_view.held(entry) <= 2 * rank_view.BAND_CAPACITY * len(files.feeds[(0, METRIC)].env.cols)
    # the sibling rank file (opened by the app, not a row) keeps no points either
    with entry.run.locked(WAIT_S):
        sibling = files.ranked.runs[1]
        assert sibling is not entry.run
        assert sum(p.n for p in sibling._points.values()) == 0

    # the band spans the whole run, at most 4000 points, and shows rank 1's one-step spike
    x, lo, hi = _band(band)
    assert len(x) <= 4000 and x[0] == 0 and x[-1] > 299_000
    at = int(np.argmax(hi))
    assert hi[at] == 40.0 and x[at] <= SPIKE and (at + 1 == len(x) or x[at + 1] > SPIKE)
    assert lo[at] < 3.0                       # rank 0 did not spike: the band opens there
    bucket = files.feeds[(1, METRIC)].env.size    # the band is as sharp as rank 1's envelope
    assert np.all(np.abs(x[hi > 3.0] - SPIKE) <= bucket)


TIME = "sys/step_time"
STALL = 123_457        # one slow step on rank 1 only


def _write_timed(writer, rank: int, lo: int, hi: int) -> None:
    steps = np.arange(lo, hi)
    loss = 2.0 * np.exp(-steps / 50_000.0) + 0.05 * rank
    st = 0.1 + 0.001 * np.sin(steps * 0.37)
    if rank == 1 and lo <= STALL < hi:
        st[STALL - lo] = 4.0
    append_columns(writer, steps, loss, st)
    writer.flush(hi - 1)


@pytest.fixture
def timed_writers(tmp_path):
    path = tmp_path / "exp.h5"
    writers = live_rank_writers(path, [METRIC, TIME])
    yield writers, path
    for w in writers:
        w.close()


def test_the_ranks_tab_of_a_live_run_reads_its_new_rows_only(window, qtbot, timed_writers, monkeypatch):
    """The Ranks tab shown while a 2-rank run grows 20k -> 200k steps: each refresh's heatmap reads
    take the rows the files added since the last one (not every rank's file from the start), what
    they hold stays bounded, and rank 1's one-step stall is the brightest cell of its column (a
    timing cell is its steps' max) with its step in the hover. The per-rank summary lines
    (analysis.ranks.summaries) are not counted here."""
    import threading

    from tests.gui_helpers import open_runs, show_panel
    from trainspect.analysis.run import Run
    from trainspect.app import rank_view
    from trainspect.app.gui.widgets import ranks_panel

    writers, path = timed_writers
    for rank, w in enumerate(writers):
        _write_timed(w, rank, 0, 20_000)
    entry = open_runs(window, [path])[0]
    panel = window.ranks
    show_panel(window, qtbot, panel)

    def shows(last):
        return (panel.timing.ranks == [0, 1] and len(panel.timing.last) and panel.timing.last[-1] == last
                and len(panel.metric.last) and panel.metric.last[-1] == last and not panel.reading())
    qtbot.waitUntil(lambda: shows(19_999), timeout=int(WAIT_S * 1000))

    # rows of the scalar tables read inside the Ranks tab's reads (summary lines left out)
    where, read = threading.local(), []
    real_read, real_summary = ranks_panel.read_ranks, ranks_panel.summary_html
    real_rows, real_once = Run.scalar_rows, Run._read_once

    def flagged(fn, on):
        def call(*args, **kwargs):
            before = getattr(where, "on", False)
            where.on = on
            try:
                return fn(*args, **kwargs)
            finally:
                where.on = before
        return call

    def scalar_rows(self, names, start, stop=None, latest=False):
        if getattr(where, "on", False):
            read.append(max(0, min(self.scalar_rows_seen, self.scalar_rows_seen if stop is None else stop) - start))
        return real_rows(self, names, start, stop, latest)

    def read_once(self, tag):
        if getattr(where, "on", False):
            read.append(self.scalar_rows_seen)       # a scan of every row
        return real_once(self, tag)

    monkeypatch.setattr(ranks_panel, "read_ranks", flagged(real_read, True))
    monkeypatch.setattr(ranks_panel, "summary_html", flagged(real_summary, False))
    monkeypatch.setattr(Run, "scalar_rows", scalar_rows)
    monkeypatch.setattr(Run, "_read_once", read_once)
    held = []
    for lo in range(20_000, 200_000, 30_000):
        read.clear()
        for rank, w in enumerate(writers):
            _write_timed(w, rank, lo, lo + 30_000)
        window.runs.poll()
        qtbot.waitUntil(lambda: shows(lo + 29_999), timeout=int(WAIT_S * 1000))
        new_rows = 2 * 2 * 30_000                    # both ranks' files: two metrics a step
        assert 0 < sum(read) <= new_rows, (lo, read)
        held.append(rank_view.column_held(entry))
    assert max(held) <= 4 * rank_view.COLUMN_CAPACITY * 8      # 2 ranks x 2 metrics x 8 numbers a bucket

    heat = panel.timing
    assert heat.name == TIME and len(heat.first) <= max(100, panel.width() - 120)
    col = int(np.searchsorted(heat.last, STALL))
    assert heat.first[col] <= STALL <= heat.last[col] < heat.first[col] + 1000
    assert heat.values[1, col] == 4.0 and heat.values[0, col] < 0.2
    assert np.all(np.delete(heat.values[1], col) < 0.2)          # the only bright cell of rank 1
    assert heat.outliers == [(1, col)]                            # and outlined: above the colour range
    assert f"at step {STALL}" in heat.hover_text(1, *heat.cell_at(STALL + 0.5, 1.5)[1:])
    with entry.run.locked(WAIT_S):                                  # the sibling file holds no points
        assert sum(p.n for p in entry._rank_files.ranked.runs[1]._points.values()) == 0
