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


def test_a_heatmap_cell_is_centred_on_its_step(window, qtbot, tmp_path):
    """A spike at step 40 filled the cell 40..41 while the curve above peaked at 40: each column
    is centred on its step, and hovering either half of it names that step."""
    (entry,) = open_runs(window, [make_run(tmp_path / "run.h5", n_steps=120, n_layers=2)])
    hm = window.heatmap
    window.view.set_step_range((30.0, 50.0))
    qtbot.waitUntil(lambda: hm.source is not None and hm.shown.size > 0 and not hm.reading()
                    and 29 <= hm.buckets[0][0] <= 31 and hm.buckets[1][-1] <= 51
                    and aligned(window, [35, 45]), timeout=WAIT_MS)
    first, last = hm.buckets
    assert list(first) == list(last)                        # one step per column at this zoom
    rect = hm.image.mapRectToParent(hm.image.boundingRect())
    width = rect.width() / len(first)
    for i in (0, len(first) // 2, len(first) - 1):
        centre = rect.left() + (i + 0.5) * width
        assert abs(centre - first[i]) < 1e-6, (i, centre, first[i])
    for step in (35, 40, 45):
        assert hm.cell_at(step - 0.4, 0.5)[1] == step and hm.cell_at(step + 0.4, 0.5)[1] == step
    # one x for one step in both panels, at the cell's centre
    assert max(offsets(window, [40])) <= TOLERANCE_PX
