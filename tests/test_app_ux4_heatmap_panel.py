"""The Layers tab's map and the plot under it (UX review trial14 L2, L4).

L2: the axis title "layer (ReLU-family outp" was cut; the selected layers' colour legend sat at
the tab's bottom; the selection lines ran across the whole view, past the map's end; four layers
at exactly 1.0 dead were drawn on a 0.6-1.4 axis. L4: with 60 layers, a click on a cell shrank
the map to ~90 px with every 12th row named."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def open_heatmap(window, qtbot, path, stat=None):
    (entry,) = open_runs(window, [path])
    hm = window.heatmap
    window.tabs.setCurrentWidget(hm)
    if stat is not None:
        window.view.set_heatmap_stat(stat)
    qtbot.waitUntil(lambda: hm.source is not None and (stat is None or hm.source.stat == stat)
                    and hm.shown.size > 0 and not hm.reading(), timeout=WAIT_MS)
    return entry, hm


def select(window, qtbot, hm, rows):
    window.view.set_selected_layers([hm.source.layers[r] for r in rows])
    qtbot.waitUntil(lambda: len(hm.layer_curves) == len(rows) and not hm.reading(), timeout=WAIT_MS)
    qtbot.wait(100)


def test_sixty_layers_keep_a_readable_map_when_a_layer_is_plotted_under_it(window, qtbot, tmp_path):
    _, hm = open_heatmap(window, qtbot, make_run(tmp_path / "deep.h5", n_steps=200, n_layers=30))
    n = len(hm.source.layers)
    assert n >= 60
    select(window, qtbot, hm, [0, n - 1])
    assert hm.series_plot.getViewBox().height() > 40            # the layer's plot is there ...
    rows_px = hm.plot.getViewBox().height()
    assert rows_px >= 150, rows_px                               # ... and the map kept its room (was ~90)
    labelled = len(hm.plot.getAxis("left")._tickLevels[0])
    assert labelled >= n / 7, (labelled, n)                      # a name at least every 7th row (was 12th)
    # the series plot is not cut off at the canvas's bottom
    canvas = hm.canvas
    bottom = canvas.mapFromScene(hm.series_plot.sceneBoundingRect()).boundingRect().bottom()
    assert bottom <= canvas.viewport().height() + 1
    shoot(window, "ux4_deep_map.png")


def test_selection_outlines_stay_on_the_map_and_the_axis_title_is_whole(window, qtbot, tmp_path):
    _, hm = open_heatmap(window, qtbot, make_run(tmp_path / "run.h5", n_steps=200, n_layers=4), stat="act_dead_frac")
    assert hm.plot.getAxis("left").labelText == "layer"          # never "layer (ReLU-family outp"
    select(window, qtbot, hm, [0, 1])
    title = hm.series_plot.titleLabel.text
    assert "ReLU-family outputs only" in title                  # which rows: said under the map
    # the colours of the plotted layers are in the line between the map and their curves
    assert all(name in title for name in ("act0", "act1")) and "&#9632;" in title
    assert not hm.legend.isVisibleTo(hm)                         # no second legend at the bottom
    window.view.set_step_range((-100.0, 400.0))                  # the view runs past the data
    qtbot.waitUntil(lambda: not hm.reading(), timeout=WAIT_MS)
    qtbot.wait(100)
    image = hm.image.sceneBoundingRect()
    assert len(hm.row_marks) == 2
    for mark in hm.row_marks:
        rect = mark.sceneBoundingRect()
        assert rect.left() >= image.left() - 2 and rect.right() <= image.right() + 2, (rect, image)
    # a fraction's plot shows 0..1, whatever its values
    lo, hi = hm.series_plot.getViewBox().viewRange()[1]
    assert lo <= 0.0 <= 0.05 and 0.95 <= 1.0 <= hi and hi - lo < 1.3
    shoot(window, "ux4_dead_frac_map.png")


def test_a_constant_series_says_so(window, qtbot, tmp_path):
    entry, hm = open_heatmap(window, qtbot, make_run(tmp_path / "run.h5", n_steps=200, n_layers=2),
                             stat="grad_nonfinite")
    select(window, qtbot, hm, [0])
    values = np.concatenate([c.getData()[1] for c in hm.layer_curves])
    values = values[np.isfinite(values)]
    if values.size and values.min() == values.max():
        assert f"constant at {values[0]:.4g}" in hm.series_plot.titleLabel.text
    hm.view.set_heatmap_stat("grad_norm")                       # a varying one: no such note
    qtbot.waitUntil(lambda: hm.source.stat == "grad_norm" and len(hm.layer_curves) == 1 and not hm.reading(),
                    timeout=WAIT_MS)
    assert "constant" not in hm.series_plot.titleLabel.text
