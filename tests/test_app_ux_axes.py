"""The scalar plots' x axes (UX review trial14, M1 and M11).

M1: only the bottom plot had x tick labels: when the plots overflowed their scroll area (a
laptop screen, a finding adding evidence plots) no step number was in view. Every plot shows
its x values now (the axis title stays under the bottom one).
M11: the wall-time axis of a sub-second run read "17.300 ... 17.799": seconds of the minute with
float noise. It reads HH:MM:SS.s now. The relative-time axis read "time since start (s)
(x0.001)"; its ticks carry their unit ("0.1 s", "1:30") and its title has no SI factor."""
import re

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QImage, QPainter  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402

WAIT_MS = 60_000
CLOCK = re.compile(r"^\d\d:\d\d:\d\d(\.\d+)?$")


def drawn_ticks(axis):
    """The tick texts ``axis`` draws at its current size and range."""
    image = QImage(800, 200, QImage.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in specs[2]] if specs else []


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    # 60 steps, 0.01 s apart: the whole run lasts 0.6 s
    return make_run(tmp_path_factory.mktemp("short") / "short.h5", n_steps=60, n_layers=0)


def plotted(window, qtbot):
    panel = window.scalars
    qtbot.waitUntil(lambda: panel.curves and all(c.n_points > 0 for c in panel.curves.values()), timeout=WAIT_MS)
    return panel


def test_every_plot_shows_its_x_values_and_an_overflowing_column_keeps_them_in_view(window, qtbot, short_run):
    window.view.set_combine_losses(False)   # three plots (train + val loss on one: test_app_ux2_losses)
    open_runs(window, [short_run])
    window.resize(1366, 768)
    panel = plotted(window, qtbot)
    plots = list(panel.plots.values())
    assert len(plots) == 3
    assert all(p.getAxis("bottom").style["showValues"] for p in plots)
    assert [p.getAxis("bottom").label.isVisible() for p in plots] == [False, False, True]
    # An overflowing column scrolled to its top: the bottom plot is out of view, and the top
    # plot in view draws step numbers.
    viewport = panel.scroll.viewport().height()
    panel.canvas.setMinimumHeight(int(viewport * 2))
    qtbot.waitUntil(lambda: panel.scroll.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    panel.scroll.verticalScrollBar().setValue(0)
    qtbot.wait(100)
    assert plots[-1].getAxis("bottom").sceneBoundingRect().top() > viewport
    top = plots[0]
    assert top.getAxis("bottom").sceneBoundingRect().bottom() < viewport
    qtbot.waitUntil(lambda: bool(drawn_ticks(top.getAxis("bottom"))), timeout=WAIT_MS)
    texts = drawn_ticks(top.getAxis("bottom"))
    assert all(t.strip().isdigit() for t in texts), texts


def test_wall_time_ticks_read_as_clock_times(window, qtbot, short_run):
    open_runs(window, [short_run])
    window.view.set_x_mode("wall")
    panel = plotted(window, qtbot)
    axis = list(panel.plots.values())[-1].getAxis("bottom")
    qtbot.waitUntil(lambda: bool(drawn_ticks(axis)), timeout=WAIT_MS)
    texts = drawn_ticks(axis)
    assert len(texts) >= 2 and all(CLOCK.match(t) for t in texts), texts     # was "17.300 ... 17.799"
    assert not any(re.search(r"\.\d*99\d?$", t) for t in texts), texts


def test_relative_time_axis_has_units_and_no_si_factor(window, qtbot, short_run):
    open_runs(window, [short_run])
    window.view.set_x_mode("relative")
    panel = plotted(window, qtbot)
    axis = list(panel.plots.values())[-1].getAxis("bottom")
    qtbot.waitUntil(lambda: bool(drawn_ticks(axis)), timeout=WAIT_MS)
    assert "(x" not in axis.labelString() and "time since start" in axis.labelString()
    texts = drawn_ticks(axis)
    assert len(texts) >= 2 and all(re.match(r"^-?\d+(\.\d+)? s$", t) for t in texts), texts


def test_tick_texts():
    from trainspect.app.gui.widgets.parts import clock_text, duration_text

    t = 1_700_000_017.7999999
    assert CLOCK.match(clock_text(t, 0.1)) and clock_text(t, 0.1).endswith(".8")
    assert CLOCK.match(clock_text(t, 1.0)) and "." not in clock_text(t, 1.0)
    assert duration_text(0.30000000004, 0.1) == "0.3 s"
    assert duration_text(90, 60) == "1:30"
    assert duration_text(7500, 600) == "2:05:00"
