"""What the plots show of a focused finding (offscreen Qt, real run files): a sparse metric's line
stays inside its zoomed plot, the evidence plot under the Layers heatmap can be read, and a
learning rate plotted already is not plotted twice under the recorder's name."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QFontMetricsF  # noqa: E402

from trainspect.analysis import Evidence, Finding  # noqa: E402
from trainspect.app.gui.widgets.parts import LOG_TICK_PX, log_ticks  # noqa: E402
from trainspect.app.gui.widgets.view_line import edge_values  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, recorded, show_panel  # noqa: E402
from tests.test_app_step_weighted_smoothing import scalar_file  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def focus(window, finding):
    """Show ``finding`` as the only one and click it (the real advisor's result must not
    replace it: it is waited for first)."""
    window.advisor.wait()
    window.advisor.set_findings([finding], "1 finding")
    window.advisor.activate(0)


def idle(window) -> bool:
    return not window.runs.io.outstanding() and not window.heatmap.reading()


def test_the_line_through_a_range_counts_where_it_crosses_the_edges():
    x, y = np.array([0.0, 50.0, 100.0]), np.array([4.0, 3.0, np.nan])
    assert edge_values(x, y, (-5.0, 40.0)) == pytest.approx([3.2])     # no line left of step 0
    assert list(edge_values(x, y, (60.0, 90.0))) == []                 # a NaN end draws no segment
    assert list(edge_values(x[:1], y[:1], (-5.0, 5.0))) == []
    assert list(edge_values(None, None, (0.0, 1.0))) == []


def test_a_zoomed_sparse_metric_is_fitted_to_its_line_not_to_the_points_in_view(window, tmp_path, qtbot):
    """val/loss every 50 steps, a finding at steps 0-41: the view was fitted to the point at step
    0 alone (4.2-5.0 in the trial) and the line to step 50 left the plot at step ~20. (A finding
    at steps 0-35 now: its view, 0-45, keeps the step-50 point out, as 0-41's did before the
    view stopped showing steps below 0.)"""
    entry, = open_runs(window, [make_run(tmp_path / "sparse.h5", n_steps=300, n_layers=0, val_every=50)])
    focus(window, Finding(symptom="weight_growth", severity="warning", title="weights grew", first_step=0,
                          last_step=35))
    plot = window.scalars.plots["val/loss"]
    val = recorded(entry, "val/loss")

    def line_in_view():
        (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
        at_edge = np.interp(x1, val.steps, val.values)
        return x1 < 50 and y0 <= at_edge <= y1 and y0 <= val.values[0] <= y1

    qtbot.waitUntil(lambda: idle(window) and line_in_view(), timeout=WAIT_MS)


def test_log_ticks_fit_the_axis_length():
    assert [round(10 ** t, 6) for t in log_ticks(-0.3, 1.8, 10)] == [1, 2, 5, 10, 20, 50]
    assert [round(10 ** t, 6) for t in log_ticks(-0.3, 1.8, 3)] == [1, 10]
    assert len(log_ticks(-10.0, 10.0, 4)) <= 4
    assert log_ticks(0.5, 0.55, 4) == []          # within a decade: pyqtgraph's own ticks


def test_the_evidence_plot_under_the_heatmap_names_every_layer_and_its_ticks_do_not_overlap(window, tmp_path, qtbot):
    """1600x1000, a finding naming 8 layers: its log-y labels printed over each other, its legend
    sat on the curves and named 3 of the 8."""
    entry, = open_runs(window, [make_run(tmp_path / "layers.h5", n_steps=300, n_layers=7)])
    window.resize(1600, 1000)
    hm = window.heatmap
    show_panel(window, qtbot, hm)
    params = [f"layers.{i}.{kind}" for i in range(7) for kind in ("weight", "bias")]
    focus(window, Finding(symptom="weight_growth", severity="warning", title="weights grew", first_step=0,
                          last_step=41, layers=params[:8],
                          evidence=[Evidence(series="grad_norm", text="grew", layer=params[0])]))
    qtbot.waitUntil(lambda: idle(window) and len(hm.layer_curves) == 8, timeout=WAIT_MS)
    window.grab()
    assert hm.legend.isVisible() and not hm.series_plot.legend
    legend = hm.legend.text()
    assert all(name in legend for name in params[:8]) and "more" not in legend

    axis = hm.series_plot.getAxis("left")
    assert axis.logMode
    low, high = hm.series_plot.getViewBox().viewRange()[1]
    height = hm.series_plot.getViewBox().height()
    labelled = [v for _, values in axis.tickValues(low, high, height)[:axis.style["maxTextLevel"] + 1] for v in values]
    pixels = np.sort((np.array(labelled) - low) / (high - low) * height)
    text_height = QFontMetricsF(axis.style["tickFont"] or window.font()).height()
    assert len(labelled) <= height // LOG_TICK_PX and np.all(np.diff(pixels) >= text_height)

    window.view.set_selected_layers(params)          # 14 selected, 12 plotted: the rest are counted
    qtbot.waitUntil(lambda: idle(window) and len(hm.layer_curves) == 12, timeout=WAIT_MS)
    assert "… and 2 more" in hm.legend.text()
    window.view.set_selected_layers([])
    assert not hm.legend.isVisible()


def lr_file(path, logged_lr):
    """A run with a warm-up LR as the recorder writes it (sys/lr) and as the script logged it."""
    steps = np.arange(200)
    lr = np.minimum(1.0, (steps + 1) / 20.0) * 0.1
    return scalar_file(path, {"train/loss": (steps, 3.0 - steps / 100.0), "lr": (steps, logged_lr(lr)),
                              "sys/lr": (steps, lr), "sys/grad_norm": (steps, np.ones(200))})


@pytest.mark.parametrize("logged, doubled", [(lambda lr: lr.astype(np.float32), False), (lambda lr: 2 * lr, True)])
def test_a_learning_rate_plotted_already_is_not_plotted_again_under_the_recorders_name(
        window, tmp_path, qtbot, logged, doubled):
    """The trial's run logged ``lr`` and the recorder wrote ``sys/lr``, the same values: a finding
    whose evidence names sys/lr plotted both, one curve twice. A different LR is still added."""
    open_runs(window, [lr_file(tmp_path / "lr.h5", logged)])
    window.advisor.wait()
    window.view.set_metrics(["train/loss", "lr"])
    focus(window, Finding(symptom="weight_growth", severity="warning", title="LR too high", first_step=0,
                          last_step=40, evidence=[Evidence(series="sys/lr", text="peak LR 0.1"),
                                                  Evidence(series="sys/grad_norm", text="norm")]))
    qtbot.waitUntil(lambda: idle(window) and "sys/grad_norm" in window.view.metrics, timeout=WAIT_MS)
    assert ("sys/lr" in window.view.metrics) == doubled
    assert list(window.scalars.plots) == window.view.metrics
