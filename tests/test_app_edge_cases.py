"""The desktop app on unusual but real runs: scalars only, nothing logged yet, a file opened
while its writer starts, NaN / Inf / single-point / negative metrics, HTML in names, crash
messages, many runs. Each test pins a bug that was seen (offscreen Qt, real run files)."""
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import open_run  # noqa: E402
from trainspect.app.gui.main_window import MainWindow  # noqa: E402
from trainspect.app.gui.settings import make_settings  # noqa: E402
from trainspect.recorder.h5file import RunFileWriter  # noqa: E402
from tests.gui_helpers import open_runs, show_panel  # noqa: E402

WAIT_MS = 30_000   # generous deadlines: a loaded machine only makes the waits longer
from tests.fixtures_runs import make_run  # noqa: E402


def scalar_file(path, columns: dict, name=None, status="finished", error=""):
    """A run file with the given metrics {name: (steps, values)} and no layer tables."""
    w = RunFileWriter(path)
    w.start({"name": name or path.stem})
    w.add_tags(list(columns))
    for tag, (steps, values) in enumerate(columns.values()):
        steps = np.asarray(steps, dtype=np.int64)
        w.append_scalars(steps, np.full(len(steps), tag), np.asarray(values, dtype=np.float64), 1e9 + steps * 0.1)
    if error:
        w.set_error(error)
    w.close(status=status, last_step=max(int(np.max(s)) for s, _ in columns.values()))
    return path


def test_scalars_only_run_reads_as_no_layer_records(tmp_path):
    # "snaps/" holds the layout tables even without snapshot records: counting its rows
    # used to raise KeyError ("object 'step' doesn't exist").
    path = make_run(tmp_path / "scalars.h5", n_steps=50, n_layers=0)
    with open_run(path) as run:
        assert run.record_count("snaps") == 0 and run.record_count("hists") == 0
        assert run.snapshots().data.shape[0] == 0 and run.layer_stat_names() == []


def test_scalars_only_run_says_what_is_missing_in_layer_tabs(window, tmp_path, qtbot):
    path = make_run(tmp_path / "scalars.h5", n_steps=200, n_layers=0)
    open_runs(window, [path])
    for panel in (window.heatmap, window.distributions):
        show_panel(window, qtbot, panel)
        assert panel.message.isVisible() and "watch(model" in panel.message.text()
    assert not window.heatmap.plot.isVisible() and not window.heatmap.colorbar.isVisible()   # no empty axes
    assert not window.distributions.canvas.isVisible()
    assert window.errors == []                     # it used to say "cannot read distributions"
    open_runs(window, [make_run(tmp_path / "layers.h5", n_steps=200, n_layers=2)])
    assert window.distributions.canvas.isVisible() and not window.distributions.message.isVisible()
    show_panel(window, qtbot, window.heatmap)
    assert window.heatmap.plot.isVisible() and not window.heatmap.message.isVisible()


def test_run_with_no_steps_grows_while_open(window, tmp_path, qtbot):
    w = RunFileWriter(tmp_path / "empty.h5")
    w.start({"name": "empty"})
    w.flush()
    try:
        entry = open_runs(window, [tmp_path / "empty.h5"])[0]
        assert window.errors == [] and window.view.metrics == []
        w.add_tags(["train/loss"])
        w.append_scalars(np.arange(20), np.zeros(20), np.linspace(2, 1, 20), time.time() + np.arange(20.0))
        w.flush(19)
        qtbot.waitUntil(lambda: ("train/loss", entry.key) in window.scalars.curves, timeout=3000)
        qtbot.waitUntil(lambda: window.scalars.curves[("train/loss", entry.key)].n_points == 20, timeout=3000)
    finally:
        w.close()


def test_file_opened_before_its_writer_started_opens_once_it_starts(window, tmp_path, qtbot):
    from trainspect.recorder.claim import WriterLock

    lock = WriterLock(tmp_path / "starting.h5")   # as the recorder: its lock, then the file
    assert lock.acquire()
    w = RunFileWriter(tmp_path / "starting.h5")   # created, layout not written yet
    w.f.flush()
    try:
        row, = window.open_paths([tmp_path / "starting.h5"])
        qtbot.waitUntil(lambda: "waiting for the writer" in window.statusBar().currentMessage(), timeout=30_000)
        assert window.errors == [] and not row.ready and "waiting for the writer" in row.status_text()
        w.start({"name": "starting"})
        w.add_tags(["loss"])
        w.append_scalars([0, 1], [0, 0], [1.0, 0.9], [time.time()] * 2)
        w.flush(1)
        qtbot.waitUntil(lambda: len(window.runs) == 1, timeout=30_000)
        assert window.runs.current.name == "starting" and window.view.metrics == ["loss"]
        assert window.errors == [] and window.runs.starting() == []
    finally:
        w.close()
        lock.release()


def test_sparse_short_and_single_point_metrics_share_the_full_x_range(window, tmp_path, qtbot):
    n = 5000
    path = scalar_file(tmp_path / "mixed.h5", {
        "early": (np.arange(100), np.full(100, np.nan)),      # all NaN, only the first 100 steps
        "single": ([42], [3.5]),
        "every": (np.arange(n), np.linspace(1, 2, n)),
        "sparse": (np.arange(0, n, 1000), np.linspace(5, 1, 5)),
    })
    entry = open_runs(window, [path])[0]
    window.view.set_metrics(["early", "single", "every", "sparse"])
    qtbot.waitUntil(lambda: all(p.getViewBox().viewRange()[0][1] >= n - 1 for p in window.scalars.plots.values()),
                    timeout=WAIT_MS)
    for plot in window.scalars.plots.values():
        x0, x1 = plot.getViewBox().viewRange()[0]
        assert x0 <= 0 and x1 >= n - 1            # used to be squeezed to steps 0..100
    assert window.scalars.curves[("single", entry.key)].raw.opts["symbol"] == "o"   # one point is visible
    assert window.scalars.curves[("every", entry.key)].raw.opts["symbol"] is None
    assert "no finite values" in window.scalars.plots["early"].titleLabel.text
    text = window.scalars.show_crosshair(100.0)
    assert "@ step 0" in text                      # the sparse metric's point is not at step 100


def test_log_y_says_when_values_cannot_be_drawn(window, tmp_path, qtbot):
    path = scalar_file(tmp_path / "neg.h5", {"loss": (np.arange(50), -np.linspace(0.1, 3, 50)),
                                             "acc": (np.arange(50), np.linspace(0.1, 1, 50))})
    open_runs(window, [path])
    window.view.set_metrics(["loss", "acc"])
    window.view.set_log_y(True)
    assert "no positive values" in window.scalars.plots["loss"].titleLabel.text
    assert "—" not in window.scalars.plots["acc"].titleLabel.text
    window.view.set_log_y(False)
    assert "—" not in window.scalars.plots["loss"].titleLabel.text


def tooltip_shows(text: str) -> str:
    """What Qt shows of a tooltip: rich text when it looks like HTML, else the text itself."""
    from PySide6.QtGui import Qt as GuiQt, QTextDocument
    if not GuiQt.mightBeRichText(text):
        return text
    doc = QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText().replace("\u2029", "\n")


def test_html_in_names_and_crash_messages_shows_as_text(window, tmp_path, qtbot):
    error = "RuntimeError: expected <class 'torch.Tensor'> & more " + "x" * 200
    path = scalar_file(tmp_path / "crash.h5", {"<i>m</i>": (np.arange(10), np.linspace(1, 0.5, 10))},
                       name="<b>x</b>", status="crashed", error=error)
    open_runs(window, [path])
    window.view.set_metrics(["<i>m</i>"])
    window.advisor.wait()
    assert "&lt;b&gt;x&lt;/b&gt;" in window.advisor.status.text()      # was rendered bold
    assert "&lt;i&gt;m&lt;/i&gt;" in window.scalars.plots["<i>m</i>"].titleLabel.text
    item = window.run_list.list.item(0)
    assert item.text().startswith("<b>x</b>\ncrashed at step 9: RuntimeError: expected <class")
    assert len(item.text()) < 100 and error in tooltip_shows(item.toolTip())   # list stays narrow
    assert "&lt;class" in window.run_state.text() and len(window.run_state.text()) < 250
    assert error in tooltip_shows(window.run_state.toolTip())
    show_panel(window, qtbot, window.details)
    assert error in window.details.text.toPlainText()


def test_twelve_runs_get_twelve_distinct_colours(window, tmp_path):
    paths = [make_run(tmp_path / f"r{i}.h5", n_steps=30, n_layers=0, seed=i) for i in range(12)]
    open_runs(window, paths + [paths[0]])          # the same file twice opens once
    colors = [e.color for e in window.runs.runs()]
    assert len(colors) == 12 and len(set(colors)) == 12


def test_closing_the_window_while_tailing_a_live_run(qtbot, tmp_path):
    w = RunFileWriter(tmp_path / "live.h5")
    w.start({"name": "live"})
    w.add_tags(["loss"])
    w.append_scalars(np.arange(10), np.zeros(10), np.ones(10), time.time() + np.arange(10.0))
    w.flush(9)
    try:
        win = MainWindow(settings=make_settings())
        qtbot.addWidget(win)
        win.show()
        open_runs(win, [tmp_path / "live.h5"])
        w.append_scalars(np.arange(10, 20), np.zeros(10), np.ones(10), time.time() + np.arange(10.0))
        w.flush(19)
        entry = win.runs.runs()[0]
        qtbot.waitUntil(lambda: win.scalars.curves[("loss", entry.key)].n_points == 20, timeout=WAIT_MS)   # it is tailing
        win.close()
        assert len(win.runs) == 0 and not win.live.timer.isActive()
        qtbot.waitUntil(lambda: not win.runs.io.outstanding(), timeout=WAIT_MS)   # reads in flight land
        assert not win.live.timer.isActive() and len(win.runs) == 0           # no poll after close, nothing raised
    finally:
        w.close()


def test_short_run_overlaid_on_a_long_one_stays_visible(window, tmp_path, qtbot):
    # pyqtgraph's auto downsampling sizes its buckets from the view range: a curve narrower
    # than a pixel used to get a bucket larger than itself and drew nothing at all.
    long = scalar_file(tmp_path / "long.h5", {"train/loss": (np.arange(400_000), np.linspace(2, 1, 400_000))})
    short = scalar_file(tmp_path / "short.h5", {"train/loss": (np.arange(150), np.linspace(2, 9, 150))})
    a, b = open_runs(window, [long, short])
    window.view.set_metrics(["train/loss"])
    window.view.set_smoothing(0.0)
    qtbot.waitUntil(lambda: window.scalars.curves[("train/loss", b.key)].raw.getData()[0] is not None, timeout=WAIT_MS)
    curve = window.scalars.curves[("train/loss", b.key)].raw
    x, y = curve.getData()
    assert x is not None and len(x) >= 2 and np.nanmax(y) == pytest.approx(9.0)   # its peak is drawn


def test_a_1000_character_run_name_does_not_widen_the_window(window, tmp_path, qtbot):
    name = "experiment_" + "x" * 989          # no spaces: nothing to wrap at
    path = make_run(tmp_path / "long.h5", n_steps=200, n_layers=2, name=name)
    width = window.width()
    entry, = open_runs(window, [path])
    window.advisor.wait()
    for panel in (window.heatmap, window.distributions, window.details):
        window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: window.advisor.status.text().endswith(("found", "or worse")), timeout=60_000)
    # Layouts settle on the event loop: let it run, then check nothing grew.
    qtbot.waitUntil(lambda: not window.runs.io.outstanding(), timeout=60_000)
    assert window.width() == width and window.grab().width() == width
    assert window.minimumSizeHint().width() < 1300 and window.sizeHint().width() < 1300
    assert len(window.windowTitle()) < 120 and name in window.run_list.list.item(0).toolTip()
    assert "…" in window.run_list.list.item(0).text()
