"""The Compare tab puts what a sweep is compared by first (UX review trial14, M7, the app's part).

At 1600 px the table showed run, state, steps, advisor, lr, wd and half of "train loss": the
"val loss best" column the scatter plot uses was behind a horizontal scroll bar, and the rows were
in the order the files were opened. Now the run's name, the key results (best and last validation
loss, the training loss) and the config keys that differ come first, then state, steps and the
advisor; rows are sorted by the best validation loss (the training loss without one), lowest
first, until a header is clicked."""
import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402

from trainspect.recorder import Recorder  # noqa: E402

from tests.gui_helpers import open_runs, show_panel  # noqa: E402

FLOORS = {0.1: 0.9, 0.01: 0.2, 0.001: 0.5, 0.0001: 1.4}     # opened in this order
SHOTS = os.environ.get("TRAINSPECT_UX_SHOTS")


def sweep(tmp_path, val=True):
    paths = []
    for k, (lr, floor) in enumerate(FLOORS.items()):
        path = tmp_path / f"lr{lr:g}_wd0.1.h5"
        rng = np.random.default_rng(k)
        with Recorder(path, name=path.stem, config={"lr": lr, "wd": 0.1 * k, "batch": 64}) as rec:
            for step in range(100):
                loss = floor + np.exp(-step / 30) + 0.01 * rng.random()
                rec.log({"train/loss": loss}, step=step)
                if val and step % 20 == 0:
                    rec.log({"val/loss": loss + 0.1, "val/acc": 1 / (1 + loss)}, step=step)
        paths.append(path)
    return paths


def headers(panel):
    return [panel.table.horizontalHeaderItem(j).text() for j in range(panel.table.columnCount())]


def column(panel, title):
    j = headers(panel).index(title)
    return [panel.table.item(i, j).text() for i in range(panel.table.rowCount())]


def shown(window, qtbot, n):
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == n and not panel.reading(), timeout=30_000)
    return panel


def test_results_and_differing_settings_come_first_sorted_by_best_val_loss(window, qtbot, tmp_path):
    window.resize(1600, 1000)
    open_runs(window, sweep(tmp_path))
    panel = shown(window, qtbot, len(FLOORS))
    h = headers(panel)
    assert h[:6] == ["run", "val loss best", "val loss last", "train loss end", "lr", "wd"]
    assert h.index("state") > h.index("wd") and h.index("advisor") > h.index("wd")
    # lowest best validation loss first
    assert column(panel, "run") == ["lr0.01_wd0.1", "lr0.001_wd0.1", "lr0.1_wd0.1", "lr0.0001_wd0.1"]
    best = [float(v) for v in column(panel, "val loss best")]
    assert best == sorted(best)
    # the key columns are in view without scrolling
    table = panel.table
    last = h.index("train loss end")
    assert table.columnViewportPosition(last) + table.columnWidth(last) <= table.viewport().width()
    if SHOTS:
        from trainspect.app.gui.main_window import render_screenshot
        window.advisor.wait()
        qtbot.waitUntil(lambda: not panel.reading(), timeout=30_000)
        render_screenshot(window, os.path.join(SHOTS, "ux2_compare.png"))
    # a header click still sorts, and the order holds when the rows are read again
    table.sortByColumn(h.index("lr"), Qt.AscendingOrder)
    assert column(panel, "lr") == ["1e-4", "0.001", "0.01", "0.1"]
    panel._fill()
    assert column(panel, "lr") == ["1e-4", "0.001", "0.01", "0.1"]


def test_without_a_validation_loss_the_training_loss_sorts(window, qtbot, tmp_path):
    open_runs(window, sweep(tmp_path, val=False))
    panel = shown(window, qtbot, len(FLOORS))
    assert headers(panel)[:2] == ["run", "train loss end"]
    assert column(panel, "run") == ["lr0.01_wd0.1", "lr0.001_wd0.1", "lr0.1_wd0.1", "lr0.0001_wd0.1"]
