"""The crosshair readout with many runs (UX review trial14, H2).

12 runs x 4 metrics made the readout a 12-line paragraph above the plots: it pushed them down,
hid the bottom x axis, and jumped as the mouse moved; values were in run order. The readout now
has a fixed height (two lines), lists the runs of the plot under the mouse best first (lowest
loss, highest accuracy) and at most READOUT_RUNS of them, then "… N more"."""
import re

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPointF  # noqa: E402

from trainspect.app.gui.widgets import scalar_plots  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402

WAIT_MS = 60_000
N_RUNS = 10
READOUT_RUNS = getattr(scalar_plots, "READOUT_RUNS", 6)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    return [make_run(d / f"run{i:02d}.h5", n_steps=300, n_layers=0, name=f"run{i:02d}", seed=i) for i in range(N_RUNS)]


def loaded(window, qtbot, paths):
    entries = open_runs(window, paths)
    panel = window.scalars
    qtbot.waitUntil(lambda: len(panel.curves) >= N_RUNS * len(panel.plots)
                    and all(c.n_points > 0 for c in panel.curves.values()), timeout=WAIT_MS)
    return entries, panel


def names_in(text):
    return re.findall(r"run\d\d", text)


def test_many_runs_keep_the_readout_short_and_sorted(window, qtbot, sweep):
    entries, panel = loaded(window, qtbot, sweep)
    assert len(panel.plots) >= 3
    qtbot.wait(200)
    height = panel.readout.height()
    scroll = panel.scroll.geometry()
    bottom = list(panel.plots.values())[-1]
    axis_rect = bottom.getAxis("bottom").sceneBoundingRect()

    text = panel.show_crosshair(100.0, "train/loss")
    qtbot.wait(200)
    # one metric, at most READOUT_RUNS runs (as many as its two lines hold: a third line was cut
    # mid-glyph) and the count of the rest
    shown = names_in(text)
    assert 1 <= len(shown) <= READOUT_RUNS and len(set(shown)) == len(shown)
    assert f"… {N_RUNS - len(shown)} more" in text
    assert panel.readout.heightForWidth(panel.readout.width()) <= panel.readout.height()
    assert "val/loss" not in text
    # best first: the lowest train/loss at step 100
    values = {}
    for e in entries:
        step, raw, _ = panel.curves[("train/loss", e.key)].value_at(100.0)
        values[e.name] = raw
    best = sorted(values, key=values.get)[:len(shown)]
    assert shown == best
    # the whole list is in the tooltip
    assert all(name in panel.readout.toolTip() for name in values)
    # nothing moved: the readout's height, the plots' area, the bottom x axis
    assert panel.readout.height() == height
    assert panel.scroll.geometry() == scroll
    assert bottom.getAxis("bottom").sceneBoundingRect() == axis_rect

    # An accuracy is best at its highest.
    if "train/acc" in panel.plots:
        text = panel.show_crosshair(100.0, "train/acc")
        acc = {e.name: panel.curves[("train/acc", e.key)].value_at(100.0)[1] for e in entries}
        listed = names_in(text)
        assert listed == sorted(acc, key=acc.get, reverse=True)[:len(listed)] and listed
        assert "highest first" in text


def test_the_mouse_picks_the_metric_listed(window, qtbot, sweep):
    _, panel = loaded(window, qtbot, sweep)
    window.view.set_combine_losses(False)   # a plot per metric (on the shared loss plot: test_app_ux2_losses)
    plot = panel.plots["val/loss"]
    qtbot.waitUntil(lambda: plot.getViewBox().width() > 100, timeout=WAIT_MS)
    x0, x1 = plot.getViewBox().viewRange()[0]
    panel._on_mouse([plot.getViewBox().mapViewToScene(QPointF((x0 + x1) / 2, plot.getViewBox().viewRange()[1][0]))])
    text = panel.readout.text()
    assert "<b>val/loss</b>" in text and "<b>train/loss</b>" not in text


def test_one_run_still_reads_every_metric(window, qtbot, sweep):
    open_runs(window, sweep[:1])
    panel = window.scalars
    qtbot.waitUntil(lambda: panel.curves and all(c.n_points > 0 for c in panel.curves.values()), timeout=WAIT_MS)
    text = panel.show_crosshair(100.0)
    assert all(f"<b>{m}</b>" in text for m in panel.plots)
