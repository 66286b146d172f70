"""The detail panels (Layers, Distributions, Run details, Ranks) read their run on background
readers: a read that hangs inside the file leaves the window responsive, the panel says it is
reading, then shows the data once the read returns, or the error when it fails; an answer for a
run the user has left is dropped.

The hang is injected in the function each panel's read calls (before, that read ran on the GUI
thread: the window froze until it returned). A 10 ms QTimer counts how often the event loop ran.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import file_held, open_runs  # noqa: E402
from tests.test_app_ranks import four_ranks  # noqa: E402,F401  (fixture)

WAIT_MS = 60_000
HANG_S = 60           # a read is released by the test long before this (the old code froze this long)


class Hang:
    """Wraps ``module.name``: a call for a file named ``only`` (all files: None) blocks until
    ``release()``, or raises ``error`` when one is given."""

    def __init__(self, monkeypatch, module, name: str, only: str | None = None, error: Exception | None = None):
        self.real = getattr(module, name)
        self.entered, self.released = threading.Event(), threading.Event()
        self.threads: list[str] = []
        self.only, self.error = only, error

        def hanging(*args, **kwargs):
            paths = [str(getattr(getattr(a, "run", a), "path", "")) for a in args]
            if self.only is None or any(Path(p).name == self.only for p in paths):
                self.threads.append(threading.current_thread().name)
                self.entered.set()
                if self.error is not None:
                    raise self.error
                self.released.wait(HANG_S)
            return self.real(*args, **kwargs)

        monkeypatch.setattr(module, name, hanging)

    def release(self) -> None:
        self.released.set()


def _ticker(window):
    from PySide6.QtCore import QTimer

    ticks = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    return ticks, timer


def _panels():
    from trainspect.app.gui.widgets import details, distributions, heatmap, ranks_panel

    # panel attribute, module whose function the panel's read calls, that function, data shown?
    return {
        "heatmap": (heatmap, "LayerStatSource", lambda p: p.source is not None and p.image.image is not None
                    and p.image.image.shape[0] == 4),
        "distributions": (distributions, "histogram_series", lambda p: p.hist_image_data.shape == (96, 20)),
        "details": (details, "run_details_html", lambda p: "layers.0.weight" in p.text.toPlainText()),
        "ranks": (ranks_panel, "read_ranks", lambda p: p.metric.ranks == [0, 1, 2, 3]),
    }


def _open(window, tmp_path, name, four_ranks):
    if name == "ranks":
        window.open_paths([str(four_ranks)])
        assert window.wait_loaded(WAIT_MS / 1000)
        return window.runs.current
    entry, = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=2000, n_layers=2)])
    return entry


@pytest.fixture
def opened(request, window, tmp_path, qtbot):
    """The window with a run for the panel ``request.param``, other tabs' reads done."""
    name = request.param
    ranks = request.getfixturevalue("four_ranks") if name == "ranks" else None
    entry = _open(window, tmp_path, name, ranks)
    window.advisor.wait()
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    return name, entry


@pytest.mark.parametrize("opened", ["heatmap", "distributions", "details", "ranks"], indirect=True)
def test_a_hung_panel_read_leaves_the_window_responsive_then_shows_the_data(window, opened, qtbot, monkeypatch):
    name, entry = opened
    module, function, shows_data = _panels()[name]
    panel = getattr(window, name)
    if name == "heatmap":                       # the first tab: already read; read it again
        window.tabs.setCurrentWidget(window.details)
        window.runs.set_current(None)
        qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    hang = Hang(monkeypatch, module, function)
    ticks, timer = _ticker(window)
    try:
        window.tabs.setCurrentWidget(panel)
        window.runs.set_current(entry)
        qtbot.waitUntil(hang.entered.is_set, timeout=WAIT_MS)   # the panel's read started
        assert hang.threads[0].startswith("trainspect-reader")          # not the GUI thread
        n = len(ticks)
        qtbot.waitUntil(lambda: len(ticks) >= n + 20, timeout=WAIT_MS)   # the event loop runs on
        assert panel.reading() and not shows_data(panel)
        assert "reading" in _panel_text(panel)                           # the loading state
    finally:
        hang.release()
    qtbot.waitUntil(lambda: not panel.reading(), timeout=WAIT_MS)
    timer.stop()
    assert shows_data(panel), f"{name} shows no data after the read returned"
    assert "reading" not in _panel_text(panel) and window.errors == []


@pytest.mark.parametrize("opened", ["heatmap", "distributions", "details", "ranks"], indirect=True)
def test_a_failed_panel_read_shows_the_error_in_the_panel(window, opened, qtbot, monkeypatch):
    name, entry = opened
    module, function, shows_data = _panels()[name]
    panel = getattr(window, name)
    window.tabs.setCurrentWidget(window.lr_sweep)
    window.runs.set_current(None)
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    Hang(monkeypatch, module, function, error=OSError(5, "Input/output error"))
    # The row's message is recorded as it is set: a later successful refresh of the run clears
    # the row's error by design, and a poll may land between the failed read and this check.
    told_row = []
    report = window.runs.report_read_error
    monkeypatch.setattr(window.runs, "report_read_error",
                        lambda e, message: (told_row.append((e, message)), report(e, message)))
    window.tabs.setCurrentWidget(panel)
    window.runs.set_current(entry)
    qtbot.waitUntil(lambda: not panel.reading(), timeout=WAIT_MS)
    text = _panel_text(panel)
    assert "cannot read" in text and "Input/output error" in text and not shows_data(panel)
    assert any(str(entry.path) in m and "Input/output error" in m for m in window.errors)   # banner
    assert any(e is entry and "Input/output error" in m for e, m in told_row)              # the run's row


def _panel_text(panel) -> str:
    """What the panel says in words: its message line, the histogram plot's title, the details."""
    label = getattr(panel, "message", None)
    if label is None:
        return panel.text.toPlainText()
    text = label.text() if label.isVisible() else ""
    title = getattr(panel, "hist_title", None)
    return text + (" " + title.text() if title is not None and panel.canvas.isVisible() else "")


def test_an_answer_for_a_run_the_user_left_is_dropped(window, tmp_path, qtbot, monkeypatch):
    """Layers of run A hang; the user selects run B: B is shown, and A's late answer is not."""
    from trainspect.app.gui.widgets import heatmap

    a, b = open_runs(window, [make_run(tmp_path / "a.h5", n_steps=300, n_layers=2, seed=1),
                              make_run(tmp_path / "b.h5", n_steps=500, n_layers=3, seed=2)])
    window.advisor.wait()
    window.tabs.setCurrentWidget(window.details)
    window.runs.set_current(None)
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    hang = Hang(monkeypatch, heatmap, "LayerStatSource", only="a.h5")
    panel = window.heatmap
    window.tabs.setCurrentWidget(panel)
    window.runs.set_current(a)
    try:
        qtbot.waitUntil(hang.entered.is_set, timeout=WAIT_MS)
        window.runs.set_current(b)                   # moved on while A's read hangs
        qtbot.waitUntil(lambda: panel.source is not None and panel.source.run is b.run, timeout=WAIT_MS)
        rows_b = panel.image.image.shape[0]
    finally:
        hang.release()
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    assert panel.source.run is b.run and panel.image.image.shape[0] == rows_b   # A's answer dropped
    assert not panel.reading()


def test_relative_time_axis_reads_no_file_on_the_gui_thread(window, tmp_path, qtbot, monkeypatch):
    """x = time since start: the run's start time was read with the rest of its summary when it
    opened (on a reader); switching the axis reads nothing on the GUI thread, even while another
    read holds the file."""
    import threading

    import numpy as np

    from trainspect.analysis.run import Run

    real = Run.start_time
    seen = []   # (thread, value) of every start-time read

    def start_time(run):
        value = real.fget(run)
        seen.append((threading.current_thread().name, value))
        return value

    monkeypatch.setattr(Run, "start_time", property(start_time))
    entry, = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=300, n_layers=2)])
    window.view.set_metrics(["train/loss"])
    window.advisor.wait()
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    window.view.set_x_mode("wall")
    wall, _ = window.scalars.curves[("train/loss", entry.key)].raw.getOriginalDataset()
    window.view.set_x_mode("relative")
    free, _ = window.scalars.curves[("train/loss", entry.key)].raw.getOriginalDataset()
    window.view.set_x_mode("wall")
    with file_held(entry.run):
        window.view.set_x_mode("relative")       # the file is busy: nothing here may wait for it
        x, _ = window.scalars.curves[("train/loss", entry.key)].raw.getOriginalDataset()
    assert seen and all(thread != "MainThread" for thread, _ in seen), seen
    start = seen[0][1]
    assert np.isfinite(start) and entry.start_time == start
    np.testing.assert_allclose(x, np.asarray(wall) - start)
    np.testing.assert_allclose(free, np.asarray(wall) - start)


def test_plot_csv_export_is_read_and_written_on_a_reader(window, tmp_path, qtbot, monkeypatch):
    """File > Export plot > CSV: the series are read from the file on a background reader (a read
    hung inside it leaves the window responsive); the status bar says the export is under way,
    then where the file is; the CSV holds every point of the run."""
    import csv

    import numpy as np

    from trainspect.app.gui import export_actions

    entry, = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=700, n_layers=2)])
    window.view.set_metrics(["train/loss"])
    window.advisor.wait()
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    out = tmp_path / "loss.csv"
    monkeypatch.setattr(export_actions.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    from trainspect.analysis.run import Run

    hang = Hang(monkeypatch, Run, "scalar")           # the read of the series inside the file
    ticks, timer = _ticker(window)
    try:
        export_actions.export_plot_dialog(window, "train/loss", "csv")
        qtbot.waitUntil(hang.entered.is_set, timeout=WAIT_MS)
        assert hang.threads[0].startswith("trainspect-reader")
        n = len(ticks)
        qtbot.waitUntil(lambda: len(ticks) >= n + 20, timeout=WAIT_MS)     # the event loop runs on
        assert "exporting the train/loss plot" in window.statusBar().currentMessage() and not out.exists()
    finally:
        hang.release()
    qtbot.waitUntil(lambda: "plot exported to" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    timer.stop()
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    series = entry.run.scalar("train/loss")
    assert rows[0] == ["run", "step", "value", "smoothed"] and len(rows) == 1 + len(series) == 701
    np.testing.assert_array_equal([int(r[1]) for r in rows[1:]], series.steps)
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], series.values, rtol=1e-6)


def _exported_while_held(window, qtbot, monkeypatch, entry, export, under_way: str, done: str, out: Path) -> None:
    """Run ``export()`` while another thread holds ``entry``'s file (a read hung inside HDF5):
    the window keeps responding, the status bar says ``under_way`` and nothing is written yet;
    once the file is let go, the status bar says ``done``, and no error was shown."""
    from trainspect.app.gui import export_actions

    warnings = []
    monkeypatch.setattr(export_actions.QMessageBox, "warning", staticmethod(lambda *a: warnings.append(a[2])))
    ticks, timer = _ticker(window)
    try:
        with file_held(entry.run):
            export()
            n = len(ticks)
            qtbot.waitUntil(lambda: len(ticks) >= n + 20, timeout=WAIT_MS)     # the event loop runs on
            assert under_way in window.statusBar().currentMessage() and not out.exists()
        qtbot.waitUntil(lambda: done in window.statusBar().currentMessage(), timeout=WAIT_MS)
    finally:
        timer.stop()
    assert warnings == []


def _idle_run(window, qtbot, tmp_path):
    entry, = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=700, n_layers=2)])
    window.advisor.wait()
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=WAIT_MS)
    return entry


def test_run_csv_export_is_read_and_written_on_a_reader(window, tmp_path, qtbot, monkeypatch):
    """File > Export run to CSV with the run's file held by a hung read: the window stays
    responsive; afterwards the files are those a direct export of the run writes."""
    from trainspect.app.gui import export_actions
    from trainspect.app.report.csv_export import export_run_csv

    entry = _idle_run(window, qtbot, tmp_path)
    out = tmp_path / "csv"
    monkeypatch.setattr(export_actions.QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(out)))
    _exported_while_held(window, qtbot, monkeypatch, entry, lambda: export_actions.export_run_csv_dialog(window),
                         "exporting run to CSV files", "CSV files written to", out / "index.csv")
    with entry.run.locked(WAIT_MS / 1000) as run:
        direct = export_run_csv(run, tmp_path / "direct")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in direct) and len(direct) >= 3
    for p in direct:
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name


def test_report_export_is_read_on_a_reader(window, tmp_path, qtbot, monkeypatch):
    """File > Export report with the run's file held by a hung read: the window stays
    responsive; afterwards the report is complete (it names the run and plots its loss)."""
    from trainspect.app.gui import export_actions

    entry = _idle_run(window, qtbot, tmp_path)
    out = tmp_path / "report.html"
    monkeypatch.setattr(export_actions.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    _exported_while_held(window, qtbot, monkeypatch, entry, lambda: export_actions.export_report_dialog(window),
                         "exporting the report", "report written to", out)
    text = out.read_text(encoding="utf-8")
    assert text.rstrip().endswith("</html>") and "run.h5" in text and "<svg" in text
