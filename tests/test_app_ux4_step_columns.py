"""One step, one x across the Overview (UX review trial14 M2): the scalar plots and the layer
heatmap under them had different left margins (the heatmap's layer names are wider than the
plots' y ticks, its colour bar is on the right) and different auto ranges, so step 40 was at
x 462 in the plots and 521 in the heatmap of a 1389 px window."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPointF  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)
TOLERANCE_PX = 1.5


def window_x(window, view_box, step: float) -> float:
    """Where ``step`` is drawn in ``view_box``, in the window's coordinates."""
    canvas = view_box.scene().views()[0]
    p = canvas.viewportTransform().map(view_box.mapViewToScene(QPointF(step, 0.5)))
    return canvas.viewport().mapTo(window, QPointF(0.0, 0.0)).x() + p.x()


def offsets(window, steps) -> list[float]:
    plots, heatmap = window.scalars.step_view(), window.heatmap.plot.getViewBox()
    return [abs(window_x(window, plots, s) - window_x(window, heatmap, s)) for s in steps]


def aligned(window, steps) -> bool:
    return window.scalars.step_view() is not None and max(offsets(window, steps)) <= TOLERANCE_PX


@pytest.mark.parametrize("n_layers", [2, 6])
def test_a_step_sits_at_one_x_in_the_plots_and_the_heatmap(window, qtbot, tmp_path, n_layers):
    path = make_run(tmp_path / f"run{n_layers}.h5", n_steps=300, n_layers=n_layers)
    (entry,) = open_runs(window, [path])
    qtbot.waitUntil(lambda: window.heatmap.source is not None and window.heatmap.shown.size > 0, timeout=WAIT_MS)
    steps = [30, 150, 280]
    # the whole run (both auto-ranged before: the heatmap to its image, the plots padded)
    qtbot.waitUntil(lambda: aligned(window, steps), timeout=WAIT_MS)
    shoot(window, f"ux4_aligned_whole_{n_layers}.png")
    # zoomed, as a finding does
    window.view.set_step_range((35.0, 54.0))
    qtbot.waitUntil(lambda: aligned(window, [36, 40, 53]), timeout=WAIT_MS)
    shoot(window, f"ux4_aligned_zoom_{n_layers}.png")
    # a narrower window (the loss plot's title is wider than its share of the room: it runs
    # into the margin instead of holding the plots wide), and another set of plots
    window.resize(1250, 900)
    qtbot.waitUntil(lambda: aligned(window, [36, 40, 53]), timeout=WAIT_MS)
    window.resize(1100, 900)
    qtbot.waitUntil(lambda: aligned(window, [36, 40, 53]), timeout=WAIT_MS)
    shoot(window, f"ux4_aligned_1100_{n_layers}.png")
    # too narrow to line up (the plots' titles need the width): the plots are never pushed
    # out of their canvas by the margins, and line up again when the room is back
    window.resize(900, 900)
    qtbot.wait(300)
    canvas = window.scalars.canvas
    assert canvas.ci.layout.minimumWidth() <= canvas.viewport().width() + 0.5
    window.resize(1250, 900)
    qtbot.waitUntil(lambda: aligned(window, [36, 40, 53]), timeout=WAIT_MS)
    window.view.set_metrics(window.view.metrics[:1])
    qtbot.waitUntil(lambda: aligned(window, [36, 40, 53]), timeout=WAIT_MS)
    # back to the whole run
    window.view.reset_view()
    qtbot.waitUntil(lambda: aligned(window, steps), timeout=WAIT_MS)


def test_without_the_heatmap_in_view_the_plots_take_their_full_width(window, qtbot, tmp_path):
    (entry,) = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=200, n_layers=4)])
    qtbot.waitUntil(lambda: aligned(window, [20, 180]), timeout=WAIT_MS)
    plots = window.scalars.step_view()
    aligned_width = plots.width()
    window.tabs.setCurrentWidget(window.details)      # no heatmap shown: nothing to line up with
    qtbot.waitUntil(lambda: plots.width() > aligned_width + 20, timeout=WAIT_MS)
    window.tabs.setCurrentWidget(window.heatmap)
    qtbot.waitUntil(lambda: aligned(window, [20, 180]), timeout=WAIT_MS)
