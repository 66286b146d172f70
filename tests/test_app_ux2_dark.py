"""A dark application palette (UX review trial14, M10).

The plot and heatmap canvases stayed white inside a dark window (``setBackground("w")``); the
status bar's "finished at step N" (#555), the metric filter's placeholder and the hint texts
(hard-coded ``color:#555``) were nearly invisible on #1e1e1e, and the dark-red "error" severity
had low contrast there. Canvases now follow the palette, secondary text is mixed from it, and
severity colours have a variant for dark backgrounds."""
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QColor, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, show_panel  # noqa: E402

DARK = {QPalette.Window: "#2b2b2b", QPalette.WindowText: "#e0e0e0", QPalette.Base: "#1e1e1e",
        QPalette.AlternateBase: "#2b2b2b", QPalette.Text: "#e0e0e0", QPalette.Button: "#3c3c3c",
        QPalette.ButtonText: "#e0e0e0", QPalette.Highlight: "#2a82da", QPalette.HighlightedText: "#ffffff"}
GUI = Path(__file__).resolve().parents[1] / "app" / "gui"
SHOTS = os.environ.get("TRAINSPECT_UX_SHOTS")


def luminance(c: QColor) -> float:
    def ch(v):
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * ch(c.red()) + 0.7152 * ch(c.green()) + 0.0722 * ch(c.blue())


def contrast(a, b) -> float:
    la, lb = sorted((luminance(QColor(a)), luminance(QColor(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.fixture
def dark_app(qapp):
    old = qapp.palette()
    pal = QPalette()
    for role, c in DARK.items():
        pal.setColor(role, QColor(c))
    qapp.setPalette(pal)
    yield qapp
    qapp.setPalette(old)


@pytest.fixture
def dark_window(dark_app, window):
    """conftest's window, made after the dark palette is set (fixtures set up in argument order)."""
    return window


def test_canvases_and_text_follow_a_dark_palette(dark_window, qtbot, tmp_path):
    from trainspect.app.gui import theme
    from trainspect.app.vocab import Severity

    w = dark_window
    entry, = open_runs(w, [make_run(tmp_path / "dark.h5", n_steps=200, n_layers=2)])
    base = QApplication.palette().color(QPalette.Base)
    for canvas in (w.scalars.canvas, w.heatmap.canvas):
        assert canvas.backgroundBrush().color().lightness() < 80, canvas
    # what is drawn: the middle of the top plot is dark, not white
    qtbot.waitUntil(lambda: w.scalars.curves and all(c.n_points for c in w.scalars.curves.values()), timeout=60_000)
    image = w.scalars.canvas.grab().toImage()
    assert QColor(image.pixel(image.width() // 2, 20)).lightness() < 80
    # secondary text, the run state, severities: readable on the dark base
    for color in (theme.muted_color(), theme.text_color(), theme.error_color(),
                  *(theme.severity_color(s) for s in Severity), theme.state_color("finished")):
        assert contrast(color, base) >= 4.5, color
    state = re.search(r"color:(#[0-9a-fA-F]{3,6})", w.run_state.text())
    assert state and contrast(state.group(1), base) >= 4.5
    assert contrast(w.metrics.filter.palette().color(QPalette.PlaceholderText), base) >= 4.5
    show_panel(w, qtbot, w.compare)
    if SHOTS:
        from trainspect.app.gui.main_window import render_screenshot
        render_screenshot(w, os.path.join(SHOTS, "ux2_dark.png"))


def test_light_palette_keeps_white_canvases(window, tmp_path):
    open_runs(window, [make_run(tmp_path / "light.h5", n_steps=50, n_layers=0)])
    assert window.scalars.canvas.backgroundBrush().color().lightness() == 255


def test_no_fixed_grey_text_or_white_canvas_in_the_gui_code():
    bad = re.compile(r"""color:\s*#(555|777|888|333)\b|setBackground\(\s*["']w["']|color=["']#(555|777|888|333)["']""")
    hits = [f"{p.relative_to(GUI)}:{i}" for p in GUI.rglob("*.py") if p.name not in ("pdf.py", "theme.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert not hits, hits
