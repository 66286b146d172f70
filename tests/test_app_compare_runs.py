"""The Compare tab: the runs of a sweep side by side, one row each (app/run_table.py): the config
keys that differ, the losses' end / best / last, the other metrics' last values; sorted as
numbers, a clicked row made current, copied as CSV with full precision."""
import csv
import io

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QRect, Qt

from trainspect.analysis import open_run
from trainspect.app.report.content import run_summary
from trainspect.recorder import Recorder

from tests.gui_helpers import open_runs, show_panel

LRS = (1e-2, 1e-4, 1e-3)      # opened in this order: text order would put "1e-4" last


def _sweep(tmp_path):
    paths = []
    for k, lr in enumerate(LRS):
        path = tmp_path / f"lr{lr:g}.h5"
        rng = np.random.default_rng(k)
        with Recorder(path, name=f"lr{lr:g}", config={"lr": lr, "batch": 64, "opt": {"name": "adamw"}}) as rec:
            floor = {1e-2: 0.5, 1e-4: 1.5, 1e-3: 0.1}[lr]
            for step in range(200):
                loss = floor + 2.0 * np.exp(-step / 40) + 0.05 * rng.random()
                rec.log({"train/loss": loss}, step=step)
                if step % 20 == 0:
                    rec.log({"val/loss": loss + 0.2, "val/acc": 1.0 / (1.0 + loss)}, step=step)
        paths.append(path)
    return paths


def _headers(panel):
    t = panel.table
    return [t.horizontalHeaderItem(j).text() for j in range(t.columnCount())]


def _column(panel, title):
    j = _headers(panel).index(title)
    return [panel.table.item(i, j).text() for i in range(panel.table.rowCount())]


def test_a_sweep_is_one_row_per_run_with_the_settings_that_differ_and_the_losses(window, qtbot, tmp_path):
    paths = _sweep(tmp_path)
    open_runs(window, paths)
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    # the results first, then the setting that differs (trial14 M7: tests/test_app_ux2_compare.py)
    assert _headers(panel) == ["run", "val loss best", "val loss last", "train loss end", "lr", "state", "steps",
                               "advisor", "val/acc best", "val/acc last"]
    assert "2 config keys not shown" in panel.message.text()
    panel.every_key.setChecked(True)
    assert {"batch", "opt.name"} <= set(_headers(panel))
    panel.every_key.setChecked(False)
    # the numbers are the report's
    rows = list(csv.DictReader(io.StringIO(panel.csv_text())))
    for path in paths:
        with open_run(path) as run:
            _, metrics = run_summary(run)
            row = next(r for r in rows if r["run"] == run.name)
            assert float(row["train loss end"]) == pytest.approx(metrics["train_end"], rel=1e-12)
            assert float(row["val loss best"]) == pytest.approx(metrics["val_best"], rel=1e-12)
            acc = run.scalar("val/acc").values
            assert float(row["val/acc last"]) == pytest.approx(float(acc[-1]), rel=1e-12)
            assert float(row["val/acc best"]) == pytest.approx(float(acc.max()), rel=1e-12)   # a score: its highest
            assert row["state"] == "finished" and row["steps"] == "200"


def test_columns_sort_as_numbers_and_a_clicked_row_becomes_the_current_run(window, qtbot, tmp_path):
    entries = open_runs(window, _sweep(tmp_path))
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    panel.table.sortByColumn(_headers(panel).index("lr"), Qt.AscendingOrder)
    assert _column(panel, "lr") == ["1e-4", "0.001", "0.01"]
    panel.table.sortByColumn(_headers(panel).index("val loss best"), Qt.AscendingOrder)
    assert _column(panel, "run") == ["lr0.001", "lr0.01", "lr0.0001"]
    # the best value of a loss column is bold; of an accuracy column, its highest
    j = _headers(panel).index("val loss best")
    assert [panel.table.item(i, j).font().bold() for i in range(3)] == [True, False, False]
    j = _headers(panel).index("val/acc best")
    assert [panel.table.item(i, j).font().bold() for i in range(3)] == [True, False, False]
    # the CSV follows the table's order
    assert [r["run"] for r in csv.DictReader(io.StringIO(panel.csv_text()))] == ["lr0.001", "lr0.01", "lr0.0001"]
    panel._row_clicked(2, 0)
    assert window.runs.current is next(e for e in entries if e.name == "lr0.0001")
    # a sort survives a refill (a live run's new rows)
    panel._fill()
    assert _column(panel, "run") == ["lr0.001", "lr0.01", "lr0.0001"]


def test_runs_are_read_only_while_the_tab_is_shown_and_leave_with_their_run(window, qtbot, tmp_path):
    entries = open_runs(window, _sweep(tmp_path))
    panel = window.compare
    qtbot.wait(200)
    assert not panel.rows, "a hidden Compare tab read the runs"
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    window.runs.remove(entries[0])
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=10_000)
    assert entries[0].name not in _column(panel, "run")


def test_a_live_run_row_follows_its_new_rows(window, qtbot, tmp_path):
    path = tmp_path / "live.h5"
    rec = Recorder(path, name="live", config={"lr": 0.1}, flush_every=0.05)
    try:
        for step in range(50):
            rec.log({"train/loss": 1.0}, step=step)
        rec.flush()
        open_runs(window, [path])
        panel = window.compare
        show_panel(window, qtbot, panel)
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1 and not panel.reading(), timeout=30_000)
        assert _column(panel, "steps") == ["50"]
        for step in range(50, 120):
            rec.log({"train/loss": 0.25}, step=step)
        rec.flush()
        qtbot.waitUntil(lambda: _column(panel, "steps") == ["120"], timeout=30_000)
        assert _column(panel, "train loss end") == ["0.25"]
    finally:
        rec.close()


def test_the_advisor_column_names_each_runs_findings_and_sorts_the_worst_first(window, qtbot, tmp_path):
    paths = _sweep(tmp_path)
    diverged = tmp_path / "lr1.h5"
    with Recorder(diverged, name="lr1", config={"lr": 1.0, "batch": 64, "opt": {"name": "adamw"}}) as rec:
        for step in range(200):   # falls, then climbs far above where it started
            rec.log({"train/loss": 2.0 * np.exp(-step / 20) + 0.3 if step < 60 else 0.3 * 1.04 ** (step - 60)},
                    step=step)
    entries = open_runs(window, [*paths, diverged])
    panel = window.compare
    show_panel(window, qtbot, panel)
    j = lambda: _headers(panel).index("advisor")     # noqa: E731
    qtbot.waitUntil(lambda: panel.table.rowCount() == 4 and "…" not in _column(panel, "advisor"), timeout=60_000)
    cells = dict(zip(_column(panel, "run"), _column(panel, "advisor")))
    assert "divergence" in cells["lr1"] and cells["lr1"].split(" ")[1].startswith(("warning", "error"))
    assert all("warning" not in cells[e.name] and "error" not in cells[e.name] for e in entries if e.name != "lr1")
    panel.table.sortByColumn(j(), Qt.AscendingOrder)
    assert _column(panel, "run")[0] == "lr1"
    assert next(r for r in csv.DictReader(io.StringIO(panel.csv_text())) if r["run"] == "lr1")["advisor"] == cells["lr1"]


def test_hostile_names_and_huge_configs_stay_a_readable_table(window, qtbot, tmp_path):
    """A 600-character run name with markup, 100 config keys that all differ, one of them 5,000
    characters long, 60 metrics: capped columns, plain text, a window that still fits 800 px."""
    from trainspect.app.gui.widgets.compare_runs import COLUMN_MAX_PX
    from trainspect.app.run_table import MAX_CONFIG_COLUMNS, MAX_OTHER_METRICS
    paths = []
    for k in range(2):
        path = tmp_path / f"h{k}.h5"
        config = {f"key{i:03d}": i * (k + 1) for i in range(100)}
        config["note"] = "x" * 5000 + str(k)
        with Recorder(path, name="<b>bold</b>" * 50 + str(k), config=config) as rec:
            for step in range(30):
                rec.log({"train/loss": 1.0 / (step + 1), **{f"m/{j}": float(j + k) for j in range(60)}}, step=step)
        paths.append(path)
    open_runs(window, paths)
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2 and not panel.reading(), timeout=30_000)
    headers = _headers(panel)
    assert sum(h.startswith("key") or h == "note" for h in headers) == MAX_CONFIG_COLUMNS
    assert sum(h.startswith("m/") for h in headers) == MAX_OTHER_METRICS
    assert "config keys" in panel.message.text() and "not shown" in panel.message.text()
    widths = [panel.table.columnWidth(j) for j in range(panel.table.columnCount() - 1)]
    assert max(widths) <= COLUMN_MAX_PX
    assert _column(panel, "run")[0].startswith("<b>bold</b>")      # shown as typed, not as markup
    assert window.minimumSizeHint().width() <= 800


def test_the_scatter_puts_each_run_at_its_learning_rate_and_best_validation_loss(window, qtbot, tmp_path):
    """Under the table's neighbour: one point per run, the LR on a log axis (the sweep spans 100x),
    the best validation loss up; a click on a point makes its run current."""
    entries = open_runs(window, _sweep(tmp_path))
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    scatter = panel.scatter
    assert (scatter.x_box.currentText(), scatter.y_box.currentText()) == ("lr", "val loss best")
    assert scatter.axis_is_log()
    best = {r.name: r.values["val loss best"] for r in panel.rows.values()}
    assert sorted(scatter.point_data()) == sorted((f"lr{lr:g}", lr, best[f"lr{lr:g}"]) for lr in LRS)
    xs = sorted(p.pos().x() for p in scatter.scatter.points())
    assert xs == pytest.approx([-4, -3, -2])      # log10 of the LRs: evenly spaced, as the sweep is
    scatter.y_box.setCurrentText("train loss end")
    assert sorted(y for _, _, y in scatter.point_data()) == sorted(r.values["train loss end"] for r in panel.rows.values())
    target = next(e for e in entries if e.name == "lr0.0001")
    spot = next(p for p in scatter.scatter.points() if p.data()[1] == "lr0.0001")
    scatter._clicked(scatter.scatter, [spot])
    assert window.runs.current is target


def test_the_scatter_header_is_read_whole_at_the_default_size_and_in_a_small_window(window, qtbot, tmp_path):
    """Beside the x and y boxes the run count was cut to "4 rur" at the default 1600x1000."""
    open_runs(window, _sweep(tmp_path))
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    message = panel.scatter.message
    for size in ((1600, 1000), (900, 650)):
        window.resize(*size)
        qtbot.waitUntil(lambda: window.width() == size[0], timeout=30_000)
        for text in ("3 runs", "2 runs (1 without learning_rate or val loss best)"):
            message.setText(text)
            window.grab()                  # laid out and painted
            flags = Qt.TextWordWrap if message.wordWrap() else Qt.AlignLeft
            need = message.fontMetrics().boundingRect(QRect(0, 0, message.width(), 10_000), flags, text)
            assert message.isVisible() and need.width() <= message.width(), (size, text)
            assert need.height() <= message.height(), (size, text)


def test_the_scatter_says_why_it_is_empty_for_runs_with_no_numeric_setting_apart(window, qtbot, tmp_path):
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"r{k}.h5")
        with Recorder(paths[-1], name=f"r{k}", config={"optimizer": ["adam", "sgd"][k], "lr": 0.1}) as rec:
            for step in range(20):
                rec.log({"train/loss": 1.0 / (step + 1 + k)}, step=step)
    open_runs(window, paths)
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2 and not panel.reading(), timeout=30_000)
    assert panel.scatter.x_box.count() == 0 and panel.scatter.point_data() == []
    assert "no numeric setting differs" in panel.scatter.message.text()


def test_the_current_runs_point_stands_out(window, qtbot, tmp_path):
    entries = open_runs(window, _sweep(tmp_path))
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    for entry in entries:
        window.runs.set_current(entry)
        sizes = {p.data()[1]: p.size() for p in panel.scatter.scatter.points()}
        assert max(sizes, key=sizes.get) == entry.name and len(set(sizes.values())) == 2


def test_two_runs_of_one_name_are_told_apart_by_their_files(window, qtbot, tmp_path):
    """A script run twice on one path records the second run to x-2.h5 under the same name: the
    Compare tab had two rows both named `pl_none` (trial 17, F7), as `trainspect compare` had."""
    paths = []
    for k, file in enumerate(("pl_none.h5", "pl_none-2.h5", "other.h5")):
        with Recorder(tmp_path / file, name="other" if k == 2 else "pl_none") as rec:
            for step in range(20):
                rec.log({"train/loss": 1.0 / (step + 1 + k)}, step=step)
        paths.append(tmp_path / file)
    open_runs(window, paths)
    panel = window.compare
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not panel.reading(), timeout=30_000)
    assert sorted(_column(panel, "run")) == ["other", "pl_none (pl_none-2.h5)", "pl_none (pl_none.h5)"]
