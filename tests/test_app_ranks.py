"""The app on a distributed run: the Ranks tab (rank x step heatmaps, one line per rank) and the
min-max band across ranks behind the scalar curves (app/gui/widgets/ranks_panel.py, rank_band.py)."""
import time
from pathlib import Path

import numpy as np
import pytest

from trainspect.recorder import Recorder

WAIT_MS = 30_000
SLOW = 2            # the rank that sleeps before each forward (a slow data loader)


def _loss(rank, step):
    return 1.0 + rank + 0.1 * step


@pytest.fixture
def four_ranks(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with Recorder(tmp_path / "exp1.h5", stats_every=0, hist_every=0, snapshot_every=0) as rec:
            rec.watch(model, opt)
            for step in range(12):
                if rank == SLOW:
                    time.sleep(0.02)
                model(torch.ones(2, 3)).sum().backward()
                opt.step()
                opt.zero_grad()
                rec.log({"train/loss": _loss(rank, step)}, step=step)
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var)
    return tmp_path / "exp1.h5"


def test_ranks_tab_shows_every_rank_as_a_heatmap_row(window, four_ranks, qtbot):
    window.open_paths([str(four_ranks)])
    window.tabs.setCurrentWidget(window.ranks)
    panel = window.ranks
    qtbot.waitUntil(lambda: panel.metric.ranks == [0, 1, 2, 3], timeout=WAIT_MS)
    assert not panel.message.isVisible()
    timing = [panel.timing_combo.itemData(i) for i in range(panel.timing_combo.count())]
    assert set(timing) == {"sys/step_time", "sys/data_wait"}
    assert panel.loss_combo.currentData() == "train/loss"
    expected = np.array([[_loss(r, s) for s in range(12)] for r in range(4)])
    np.testing.assert_allclose(panel.metric.values, expected)
    panel.timing_combo.setCurrentIndex(timing.index("sys/data_wait"))
    assert (panel.timing.values[SLOW] >= 0.02).all()        # every wait of the slow rank holds its sleep
    text = panel.summary.text()
    for rank, name in enumerate(["exp1.h5", "exp1.rank1.h5", "exp1.rank2.h5", "exp1.rank3.h5"]):
        assert f"rank {rank}: {name}" in text
    # hovering a cell names rank, step and value; outside the image the label is blank
    assert panel.metric.cell_at(5.5, 3.5) == (3, 5, 5, _loss(3, 5))
    assert panel.metric.cell_at(40.0, 1.5) is None and panel.metric.cell_at(5.0, 4.5) is None
    from PySide6.QtCore import QPointF

    panel.resize(900, 600)
    vb = panel.metric.plot.getViewBox()
    qtbot.waitUntil(lambda: vb.width() > 100, timeout=WAIT_MS)
    panel._hovers[1].move([vb.mapViewToScene(QPointF(5.5, 3.5))])
    assert panel.hover.text() == f"rank 3, step 5: train/loss <b>{_loss(3, 5):.4g}</b>"
    panel._hovers[1].move([vb.mapViewToScene(QPointF(float(vb.viewRange()[0][1]) - 0.01, 3.5))])
    assert "rank 3" in panel.hover.text()


def test_scalar_plot_has_a_min_max_band_across_ranks(window, four_ranks, qtbot):
    window.view.set_metrics(["train/loss"])
    window.open_paths([str(four_ranks)])
    bands = window.scalars.bands.bands
    qtbot.waitUntil(lambda: bool(bands), timeout=WAIT_MS)
    (band,) = bands.values()
    x, lo = band.low.getData()
    _, hi = band.high.getData()
    np.testing.assert_array_equal(x, np.arange(12))
    np.testing.assert_allclose(lo, [_loss(0, s) for s in range(12)])
    np.testing.assert_allclose(hi, [_loss(3, s) for s in range(12)])
    window.close_current()
    assert not bands


def test_single_process_run_says_what_the_ranks_tab_is_for(window, tmp_path, qtbot):
    with Recorder(tmp_path / "solo.h5") as rec:
        for step in range(5):
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    window.open_paths([str(tmp_path / "solo.h5")])
    window.tabs.setCurrentWidget(window.ranks)
    qtbot.waitUntil(lambda: "single-process run" in window.ranks.message.text(), timeout=WAIT_MS)
    assert window.ranks.message.isVisible() and not window.ranks.timing.canvas.isVisible()
    assert not window.scalars.bands.bands


RANK_WRITER = """
import sys, time
from trainspect.recorder import Recorder
path, steps = sys.argv[1], int(sys.argv[2])
rank = int(__import__("os").environ["RANK"])
with Recorder(path, flush_every=0.1, stats_every=0, hist_every=0, snapshot_every=0) as rec:
    for step in range(steps):
        rec.log({"train/loss": 1.0 + rank + 0.1 * step}, step=step)
        if step == 0:
            rec.flush()
            print("started", flush=True)
        time.sleep(0.03)
"""


def _open_handles(path) -> int:
    """HDF5 file handles of ``path`` open in this process (h5py's view, tests only)."""
    import h5py

    return sum(1 for fid in h5py.h5f.get_obj_ids(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
               if fid.name and Path(fid.name.decode() if isinstance(fid.name, bytes) else fid.name) == Path(path))


def _shows(values, expected) -> bool:
    """The heatmap holds every rank's every step: a read taken while one rank's row was behind
    the other has the full width but NaN where the slower rank had no rows yet; the panel's
    next live reload (at most LIVE_RELOAD_MS later) fills them in."""
    return values.shape == expected.shape and bool(np.allclose(values, expected))


@pytest.mark.parametrize("first", ["rank1", "rank0"])
def test_a_rank_file_open_as_its_own_row_is_read_once(window, tmp_path, qtbot, monkeypatch, first):
    """exp1.rank1.h5 and exp1.h5 (rank 0) opened one after the other while both ranks are
    written: rank 1 is read through one HDF5 handle only (two handles of one file share it and
    corrupt each other's view): the Ranks tab borrows the row's, or lets go of its own when the
    file is opened as a row. Both rows and the Ranks tab follow the writers to the end."""
    import subprocess
    import sys

    from tests.gui_helpers import open_runs
    from tests.test_resume import DEADLINE, _env

    steps = 200
    base, rank1 = tmp_path / "exp1.h5", tmp_path / "exp1.rank1.h5"
    env = dict(_env(), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29511")
    writers = [subprocess.Popen([sys.executable, "-c", RANK_WRITER, str(base), str(steps)], stdout=subprocess.PIPE,
                                text=True, env=dict(env, RANK=str(rank))) for rank in (0, 1)]
    errors = []
    window.runs.errorOccurred.connect(lambda path, message: errors.append(message))
    panel = window.ranks
    try:
        for w in writers:
            assert w.stdout.readline().startswith("started")
        window.view.set_metrics(["train/loss"])
        window.tabs.setCurrentWidget(window.ranks)
        if first == "rank1":
            one, = open_runs(window, [rank1])
            zero, = open_runs(window, [base])
        else:                                  # rank 0 first: its Ranks tab opens rank 1's file
            zero, = open_runs(window, [base])
            qtbot.waitUntil(lambda: panel.metric.ranks == [0, 1], timeout=WAIT_MS)
            from trainspect.app.gui import model

            real, before_open = model.read_new_run, []

            def read_new_run(path):            # handles of the file already open as it is opened
                before_open.append(_open_handles(path))
                return real(path)

            monkeypatch.setattr(model, "read_new_run", read_new_run)
            one, = open_runs(window, [rank1])
            assert before_open == [0]          # the Ranks tab let go of its own handle first
        shown = window.runs.current
        assert shown is (zero if first == "rank1" else one)
        qtbot.waitUntil(lambda: panel.metric.ranks == [0, 1] and panel.entry is shown and not panel.reading(),
                        timeout=WAIT_MS)
        assert _open_handles(rank1) == 1 and _open_handles(base) == 1
        for w in writers:
            assert w.wait(timeout=DEADLINE) == 0

        def curve_len(entry):
            curve = window.scalars.curves.get(("train/loss", entry.key))
            return 0 if curve is None else len(curve.step_x_pairs()[0])

        expected = np.array([[_loss(r, s) for s in range(steps)] for r in (0, 1)])
        qtbot.waitUntil(lambda: all(window.live.status(e) is not None and window.live.status(e).state == "finished"
                                    for e in (zero, one))
                        and curve_len(zero) == steps and curve_len(one) == steps
                        and _shows(panel.metric.values, expected), timeout=WAIT_MS)
        np.testing.assert_allclose(panel.metric.values, expected)
        text = panel.summary.text()
        assert "rank 0: exp1.h5" in text and "rank 1: exp1.rank1.h5" in text
        assert _open_handles(rank1) == 1 and _open_handles(base) == 1
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait(DEADLINE)
    assert errors == [] and zero.error == "" and one.error == ""


def test_a_rank_row_that_ends_after_the_shown_rank_is_followed_to_its_end(window, tmp_path, qtbot):
    """Rank 0 has finished; rank 1, open as its own row, is still written. The Ranks tab and the
    loss band of rank 0 read rank 1 through that row, and only the row refreshes it: its new rows
    re-read them although rank 0's file no longer changes."""
    import subprocess
    import sys

    from tests.gui_helpers import open_runs
    from tests.test_resume import DEADLINE, _env

    steps = 200
    base, rank1 = tmp_path / "exp1.h5", tmp_path / "exp1.rank1.h5"
    env = dict(_env(), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29512")

    def writer(rank):
        return subprocess.Popen([sys.executable, "-c", RANK_WRITER, str(base), str(steps)], stdout=subprocess.PIPE,
                                text=True, env=dict(env, RANK=str(rank)))

    first = writer(0)
    assert first.wait(timeout=DEADLINE) == 0
    late = writer(1)
    errors = []
    window.runs.errorOccurred.connect(lambda path, message: errors.append(message))
    panel = window.ranks
    try:
        assert late.stdout.readline().startswith("started")
        window.view.set_metrics(["train/loss"])
        window.tabs.setCurrentWidget(window.ranks)
        one, = open_runs(window, [rank1])
        zero, = open_runs(window, [base])
        assert window.runs.current is zero
        assert late.wait(timeout=DEADLINE) == 0
        expected = np.array([[_loss(r, s) for s in range(steps)] for r in (0, 1)])
        bands = window.scalars.bands.bands

        def band_high():
            band = bands.get(("train/loss", zero.key))
            return np.empty(0) if band is None else band.high.getData()[1]

        qtbot.waitUntil(lambda: window.live.status(one) is not None and window.live.status(one).state == "finished"
                        and _shows(panel.metric.values, expected) and len(band_high()) == steps, timeout=WAIT_MS)
        np.testing.assert_allclose(band_high(), expected.max(axis=0))
    finally:
        if late.poll() is None:
            late.kill()
            late.wait(DEADLINE)
    assert errors == [] and zero.error == "" and one.error == ""


def test_the_advisor_reads_the_rank_files_through_the_ranks_tabs_handles(window, tmp_path, qtbot):
    """A finished 2-rank run of 200k steps, diagnosed while the Ranks tab shows it: the advisor
    reads rank 1 through the run the tab holds (one HDF5 handle per file in the process), so the
    tab's view stays right. Through a second handle of its own, each advisor read refreshed that
    handle's datasets and the tab drew rank 1 from stale rows: its loss after step ~3,400 missing,
    its last loss that of step ~3,400."""
    from tests.gui_helpers import open_runs, show_panel
    from trainspect.recorder import format as fmt
    from trainspect.recorder.h5file import RunFileWriter

    n, path = 200_000, tmp_path / "exp.h5"
    names = ["train/loss", fmt.SYS_STEP_TIME, fmt.SYS_DATA_WAIT]
    expected = {}
    for rank in range(2):
        w = RunFileWriter(fmt.rank_path(path, rank))
        w.start({"name": "exp", fmt.META_DISTRIBUTED: {"rank": rank, "world_size": 2, "run_id": "l"}}, flush_every=3600)
        w.add_tags(names)
        s = np.arange(n)
        loss = 2.0 * np.exp(-s / 40_000) + 0.1 + 0.15 * rank * (s > n // 2)
        v = np.column_stack([loss, 0.1 + 0.001 * (s % 7), 0.01 + 0.01 * rank + 0.001 * (s % 5)]).ravel()
        w.append_scalars(np.repeat(s, 3), np.tile([0, 1, 2], n), v, 1e9 + np.repeat(s, 3) * 1e-3)
        w.close(last_step=n - 1)
        expected[rank] = loss
    entry, = open_runs(window, [path])
    panel = window.ranks
    show_panel(window, qtbot, panel)
    for _ in range(3):                        # diagnosed again (as a live run is), then the tab reads again
        window.advisor.wait()
        window.advisor._start(entry)
        window.advisor.wait()
        panel._load(entry)
        qtbot.waitUntil(lambda: not panel.reading() and panel.metric.ranks == [0, 1], timeout=WAIT_MS)
    heat = panel.metric
    assert heat.last[-1] == n - 1 and np.all(np.isfinite(heat.values))
    for i, rank in enumerate(heat.ranks):
        lo = np.searchsorted(np.arange(n), heat.first)
        np.testing.assert_allclose(heat.values[i], np.add.reduceat(expected[rank], lo) / np.diff(np.append(lo, n)))
    assert "rank 1: exp.rank1.h5 — finished at step 199999; train/loss 0.2" in panel.summary.text()


def test_a_single_process_run_shows_the_explanation_without_empty_controls(window, tmp_path, qtbot):
    from tests.fixtures_runs import make_run

    window.open_paths([str(make_run(tmp_path / "one.h5", n_steps=50, n_layers=1))])
    window.tabs.setCurrentWidget(window.ranks)
    panel = window.ranks
    qtbot.waitUntil(lambda: panel.message.isVisible() and "single-process" in panel.message.text(), timeout=WAIT_MS)
    assert not panel.controls.isVisible() and not panel.timing.canvas.isVisible()

