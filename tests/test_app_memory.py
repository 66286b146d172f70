"""The app's memory follows what is shown, not the run's length (issue 11, part 5).

The plots hold a bounded envelope per curve (app.lod.Envelope) fed with the live rows, and read
a zoomed-in range back from the file. These tests grow a live run tenfold under the app and
check what it holds, that a one-step spike stays visible, that a zoom shows the recorded values
and that the live tail appends the right points.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from trainspect.app.lod import Envelope, ema

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.gui_helpers import WAIT_S, open_runs, recorded  # noqa: E402

METRIC = "train/loss"


# ---------------------------------------------------------------- the envelope alone


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_envelope_buckets_hold_each_ranges_extremes_and_stay_bounded(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50_000, 120_000))
    values = rng.normal(size=n)
    values[rng.integers(0, n, 20)] = np.nan
    spike = int(rng.integers(0, n))
    values[spike] = 1e3
    steps = np.arange(n) * 3
    env = Envelope(0.6, capacity=512)
    at = 0
    while at < n:                                  # rows arrive in uneven blocks, as live flushes do
        k = int(rng.integers(1, 5_000))
        rows = np.arange(at, min(n, at + k))
        env.extend(rows, steps[rows], 1e9 + rows * 0.1, values[rows])
        at += k
    assert env.m <= 512 and env.points == n and env.finite == n - np.isnan(values).sum()
    assert env.held() <= 512 * len(env.cols)
    c = env.cols
    for b in rng.integers(0, env.m, 40):            # each bucket: exact extremes of its rows
        r0, r1 = c["r0"][b], c["r1"][b] + 1
        assert c["ylo"][b] == np.nanmin(values[r0:r1]) and c["yhi"][b] == np.nanmax(values[r0:r1])
        assert c["yf"][b] == values[r0] or np.isnan(values[r0])
    x, y = env.draw()
    assert np.nanmax(y) == 1e3 and np.all(np.diff(x) >= 0)      # the spike is drawn, in order
    smoothed = ema(values, 0.6)[0]
    xs, ys = env.draw(smoothed=True)
    assert np.nanmax(ys) == pytest.approx(np.nanmax(smoothed))
    # the same points in one block build the same buckets (live and finished runs look alike)
    whole = Envelope(0.6, capacity=512)
    whole.extend(np.arange(n), steps, 1e9 + np.arange(n) * 0.1, values)
    for key in ("n", "r0", "r1", "ylo", "yhi", "yf", "yl"):
        np.testing.assert_array_equal(whole.cols[key][: whole.m], c[key][: env.m])


def test_envelope_state_continues_the_smoothing_inside_a_range():
    rng = np.random.default_rng(5)
    values = rng.normal(size=30_000).cumsum()
    env = Envelope(0.9, capacity=256)
    env.extend(np.arange(values.size), np.arange(values.size), np.zeros(values.size), values)
    b = env.m // 2
    r0 = int(env.cols["r0"][b])
    part, _ = ema(values[r0:], 0.9, env.state_at(b))
    np.testing.assert_allclose(part, ema(values, 0.9)[0][r0:], rtol=1e-9)


# ---------------------------------------------------------------- the app on a growing live run


def _write(writer, lo: int, hi: int, spike_at: int | None = None) -> None:
    steps = np.arange(lo, hi)
    loss = 2.0 * np.exp(-steps / 50_000.0) + 0.01 * np.sin(steps * 0.37)
    if spike_at is not None and lo <= spike_at < hi:
        loss[spike_at - lo] = 40.0
    acc = 1.0 - loss / 3.0
    writer.append_scalars(np.repeat(steps, 2), np.tile([0, 1], len(steps)),
                          np.column_stack([loss, acc]).ravel(), 1e9 + np.repeat(steps, 2) * 1e-3)
    writer.flush(hi - 1)


def _grow(window, writer, lo: int, hi: int, spike_at=None, block=50_000) -> None:
    for a in range(lo, hi, block):
        _write(writer, a, min(hi, a + block), spike_at)
    window.runs.poll()                                    # what the live tail does, blocking
    assert window.wait_loaded(WAIT_S)                     # the plots read the new rows


def _drawn(curve):
    x, y = curve.raw.getData()
    return np.asarray(x), np.asarray(y)


def _zoom(window, qtbot, curve, lo, hi):
    window.view.set_step_range((lo, hi))
    deadline = time.monotonic() + WAIT_S                 # a zoom past the envelope reads the file
    while curve.detail_wanted is not None or window.runs.io.outstanding():
        assert time.monotonic() < deadline, "zoomed-in read did not arrive"
        qtbot.wait(20)
    return _drawn(curve)


@pytest.fixture
def live_writer(tmp_path):
    from trainspect.recorder.h5file import RunFileWriter

    w = RunFileWriter(tmp_path / "long.h5")
    w.start({"name": "long"}, flush_every=0.1)
    w.add_tags([METRIC, "train/acc"])
    yield w, tmp_path / "long.h5"
    w.close()


@pytest.mark.parametrize("block_rows", [None, 7_919])
def test_a_live_run_growing_tenfold_keeps_the_app_bounded(window, qtbot, live_writer, monkeypatch, block_rows):
    if block_rows:   # reads in many small blocks: a run far ahead of the app is caught up in steps
        from trainspect.app.gui.widgets import curve as curve_module, scalar_plots

        monkeypatch.setattr(curve_module, "BUILD_BLOCK_ROWS", block_rows)
        monkeypatch.setattr(scalar_plots, "BUILD_BLOCK_ROWS", block_rows)
    writer, path = live_writer
    spike = 187_654
    _write(writer, 0, 30_000)
    entry = open_runs(window, [path])[0]
    curve = window.scalars.curves[(METRIC, entry.key)]
    assert curve.n_points == 30_000
    held_small, buckets_small = curve.env.held(), curve.env.m
    _grow(window, writer, 30_000, 300_000, spike_at=spike)
    # (4) the live tail appended every point, in order, up to the newest step
    assert curve.n_points == 300_000 and curve.last_step == 299_999
    # (1) what a curve holds does not grow with the run; the reader keeps no points at all
    bound = Envelope.CAPACITY * len(curve.env.cols)          # numbers, whatever the run's length
    assert max(held_small, curve.env.held()) <= bound and max(buckets_small, curve.env.m) <= Envelope.CAPACITY
    width = int(window.scalars.plots[METRIC].getViewBox().width())
    assert len(_drawn(curve)[0]) <= 8 * max(100, width)
    with entry.run.locked() as run:
        assert sum(p.n for p in run._points.values()) == 0
    # (4) the live envelope is the one a finished file of the same rows gives
    series = recorded(entry, METRIC)
    whole = Envelope(curve.env.weight)
    whole.extend(np.arange(len(series)) * 2, series.steps, series.wall, series.values)
    for key in ("n", "sf", "sl", "ylo", "yhi", "yf", "yl"):
        np.testing.assert_array_equal(whole.cols[key][: whole.m], curve.env.cols[key][: curve.env.m])
    np.testing.assert_allclose(whole.cols["ymhi"][: whole.m], curve.env.cols["ymhi"][: curve.env.m], rtol=1e-9)
    # (2) the one-step spike is visible in the overview ...
    assert _drawn(curve)[1].max() == 40.0
    # ... at a zoom level between the overview and single points ...
    x, y = _zoom(window, qtbot, curve, spike - 20_000, spike + 20_000)
    assert y.max() == 40.0 and len(x) <= 12 * max(100, width)
    x, y = _zoom(window, qtbot, curve, spike - 3_000, spike + 3_000)   # past the overview: a read
    assert curve.detail is not None and y.max() == 40.0 and len(x) <= 12 * max(100, width)
    # (3) ... and zoomed in, the plot holds exactly the recorded points of the range, re-read
    x, y = _zoom(window, qtbot, curve, spike - 60, spike + 60)
    inside = (x >= spike - 60) & (x <= spike + 60)
    np.testing.assert_array_equal(x[inside], np.arange(spike - 60, spike + 61))
    np.testing.assert_array_equal(y[inside], series.values[spike - 60: spike + 61])
    xs, ys = curve.smooth.getData()
    smoothed = ema(series.values, window.view.smoothing)[0]
    keep = (xs >= spike - 60) & (xs <= spike + 60)
    np.testing.assert_allclose(ys[keep], smoothed[spike - 60: spike + 61], rtol=1e-9)
    assert "step 187654" in window.scalars.show_crosshair(spike) and "40" in window.scalars.readout.text()
    # the zoomed-in detail is bounded by the plot's width too
    assert curve.detail[2].m <= 8 * max(100, width)


def test_zoomed_in_at_the_newest_steps_the_live_tail_keeps_appending(window, qtbot, live_writer):
    writer, path = live_writer
    _write(writer, 0, 100_000)
    entry = open_runs(window, [path])[0]
    curve = window.scalars.curves[(METRIC, entry.key)]
    x, _ = _zoom(window, qtbot, curve, 99_900, 100_200)       # the newest steps and room for more
    assert set(np.arange(99_900, 100_000)) <= set(np.round(x).astype(int))
    _grow(window, writer, 100_000, 100_150)
    series = recorded(entry, METRIC)
    deadline = time.monotonic() + WAIT_S
    while _drawn(curve)[0].max() < 100_149:
        assert time.monotonic() < deadline, "new rows not drawn"
        qtbot.wait(20)
    x, y = _drawn(curve)
    inside = (x >= 99_900) & (x <= 100_149)
    np.testing.assert_array_equal(x[inside], np.arange(99_900, 100_150))
    np.testing.assert_array_equal(y[inside], series.values[99_900:100_150])


def test_a_resumed_run_shows_each_step_once_in_the_overview_and_zoomed_in(window, qtbot, tmp_path):
    from trainspect.recorder import Recorder

    path = tmp_path / "resumed.h5"
    with Recorder(path) as rec:
        rec.log_many({METRIC: np.ones(9_000)}, steps=np.arange(9_000))
    with Recorder(path, resume=True) as rec:        # restarted from its checkpoint at step 6000
        rec.log_many({METRIC: np.full(6_000, 2.0)}, steps=np.arange(6_000, 12_000))
    entry = open_runs(window, [path])[0]
    curve = window.scalars.curves[(METRIC, entry.key)]
    assert curve.n_points == 12_000 and not curve.env.exact     # superseded steps 6000..8999 dropped
    x, y = _drawn(curve)
    assert set(y[x < 6_000]) == {1.0} and set(y[x >= 6_000]) == {2.0}
    x, y = _zoom(window, qtbot, curve, 5_990, 6_010)            # across the resume, read back
    inside = (x >= 5_990) & (x <= 6_010)
    np.testing.assert_array_equal(x[inside], np.arange(5_990, 6_011))
    np.testing.assert_array_equal(y[inside], [1.0] * 10 + [2.0] * 11)
