"""The scalar plot column and the status bar: ticking a metric adds one plot and keeps the
others, switching the x axis keeps every plot, closing every run shows the "Open a run" hint,
the step axis never reads "(x0.001)", and the run state is visible in the status bar."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

import pyqtgraph as pg  # noqa: E402
from trainspect.app.gui.widgets.parts import StepAxis  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402

WAIT_MS = 30_000
METRICS = ("train/loss", "val/loss", "train/acc", "train/lr", "train/grad")


@pytest.fixture(scope="module")
def five_metrics(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("five") / "five.h5", n_steps=1000, metrics=METRICS, n_layers=2)


def plotted(window) -> bool:
    """Every curve has its data (the reads run in the background)."""
    return all(c.n_points and not c.rebuild for c in window.scalars.curves.values())


def rows(window) -> list:
    """The metrics in the order their plots are laid out, top to bottom."""
    ci = window.scalars.canvas.ci
    by_row = sorted((ci.items[p][0][0], m) for m, p in window.scalars.plots.items())
    return [m for _, m in by_row]


def x_range(plot):
    return plot.getViewBox().viewRange()[0]


def test_ticking_a_metric_adds_one_plot_and_keeps_the_others(window, five_metrics, qtbot):
    window.view.set_combine_losses(False)   # a plot per metric (train + val loss on one: test_app_ux2_losses)
    open_runs(window, [five_metrics])
    window.view.set_metrics(METRICS[:3])
    qtbot.waitUntil(lambda: plotted(window), timeout=WAIT_MS)
    window.view.set_step_range((100, 400))
    plots, curves = dict(window.scalars.plots), dict(window.scalars.curves)

    window.view.toggle_metric("train/lr", True)
    assert list(window.scalars.plots) == [*METRICS[:3], "train/lr"]
    for metric, plot in plots.items():       # the same items: not rebuilt
        assert window.scalars.plots[metric] is plot
    for key, curve in curves.items():
        assert window.scalars.curves[key] is curve
    qtbot.waitUntil(lambda: plotted(window), timeout=WAIT_MS)
    for plot in window.scalars.plots.values():     # the zoom stays, the new plot follows it
        assert x_range(plot) == pytest.approx([100, 400])
    assert rows(window) == list(window.scalars.plots)

    window.view.toggle_metric("train/loss", False)       # the top plot, which the others follow
    assert list(window.scalars.plots) == ["val/loss", "train/acc", "train/lr"]
    assert rows(window) == ["val/loss", "train/acc", "train/lr"]
    for metric in ("val/loss", "train/acc"):
        assert window.scalars.plots[metric] is plots[metric]
    assert ("train/loss", window.runs.runs()[0].key) not in window.scalars.curves
    assert window.view.step_range == pytest.approx((100, 400))
    # Every plot shows its step values, the axis title is under the bottom one only (trial14 M1);
    # a zoom of the new top plot is the model's range.
    shown = [p.getAxis("bottom").style["showValues"] for p in window.scalars.plots.values()]
    assert shown == [True, True, True]
    titled = [p.getAxis("bottom").label.isVisible() for p in window.scalars.plots.values()]
    assert titled == [False, False, True]
    window.scalars.plots["val/loss"].setXRange(200, 300, padding=0)
    qtbot.waitUntil(lambda: window.view.step_range == pytest.approx((200, 300)), timeout=WAIT_MS)
    for plot in window.scalars.plots.values():
        assert x_range(plot) == pytest.approx([200, 300])


def test_a_metric_put_first_goes_on_top_and_the_rest_stay(window, five_metrics, qtbot):
    open_runs(window, [five_metrics])
    window.view.set_metrics(["train/acc", "train/lr"])
    plots = dict(window.scalars.plots)
    window.view.set_metrics(["train/loss", "train/acc", "train/lr"])
    assert rows(window) == list(window.scalars.plots) == ["train/loss", "train/acc", "train/lr"]
    assert all(window.scalars.plots[m] is p for m, p in plots.items())
    window.view.toggle_metric("train/grad", True)      # the order the plots have is the view's
    assert all(window.scalars.plots[m] is p for m, p in plots.items())
    assert rows(window) == window.view.metrics


def test_switching_the_x_axis_keeps_every_plot(window, five_metrics, qtbot):
    open_runs(window, [five_metrics])
    qtbot.waitUntil(lambda: plotted(window), timeout=WAIT_MS)
    plots = dict(window.scalars.plots)
    window.view.set_x_mode("wall")
    assert all(window.scalars.plots[m] is p for m, p in plots.items())
    assert all(isinstance(p.getAxis("bottom"), pg.DateAxisItem) for p in plots.values())
    last = list(plots.values())[-1]
    assert "wall time" in last.getAxis("bottom").labelText
    window.view.set_x_mode("step")
    assert all(window.scalars.plots[m] is p for m, p in plots.items())
    assert all(isinstance(p.getAxis("bottom"), StepAxis) for p in plots.values())
    qtbot.waitUntil(lambda: x_range(last)[1] >= 999, timeout=WAIT_MS)


def test_closing_every_run_shows_the_open_a_run_hint(window, five_metrics, qtbot):
    open_runs(window, [five_metrics])
    qtbot.waitUntil(lambda: window.scalars.scroll.isVisible(), timeout=WAIT_MS)
    window.close_current()
    assert window.runs.runs() == []
    qtbot.waitUntil(lambda: window.scalars.empty_label.isVisible(), timeout=WAIT_MS)
    assert not window.scalars.scroll.isVisible()      # no empty axes of the closed run
    open_runs(window, [five_metrics])
    qtbot.waitUntil(lambda: window.scalars.scroll.isVisible(), timeout=WAIT_MS)
    assert not window.scalars.empty_label.isVisible()


def test_a_one_step_run_has_no_si_prefix_on_its_step_axis(window, tmp_path, qtbot):
    path = make_run(tmp_path / "one.h5", n_steps=1, metrics=("train/loss",), n_layers=0)
    open_runs(window, [path])
    plot = window.scalars.plots["train/loss"]
    qtbot.waitUntil(lambda: plotted(window), timeout=WAIT_MS)
    axis = plot.getAxis("bottom")
    assert axis.autoSIPrefixScale == 1.0 and "(x" not in axis.labelString()


def test_step_ticks_are_whole_steps_without_exponents():
    from trainspect.app.gui.widgets.parts import (
        step_tick,  # (pyqtgraph wrote 1e+06 without its SI prefix)
    )

    assert [step_tick(v) for v in (0, 7, 250_000, 1_000_000, 1_500_000)] == ["0", "7", "250000", "1M", "1.5M"]


def test_the_run_state_is_visible_in_the_status_bar(window, five_metrics, qtbot):
    open_runs(window, [five_metrics])
    label = window.run_state
    assert "finished at step 999" in label.text()
    text_px = label.fontMetrics().horizontalAdvance("finished at step 999")
    qtbot.waitUntil(lambda: label.isVisible() and label.width() >= text_px, timeout=WAIT_MS)
    assert label.geometry().right() <= window.statusBar().width()
