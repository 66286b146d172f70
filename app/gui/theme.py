"""Colours that follow the application's palette (light or dark).

The plot canvases were white (``setBackground("w")``) and secondary text a fixed ``#555`` grey:
in a dark window the canvases glared and the grey text was nearly invisible on ``#1e1e1e``.
Everything here is read from ``QApplication.palette()`` when it is asked for; severity colours
have a lighter variant for dark palettes (``#C62828`` on ``#1e1e1e`` is a contrast of ~2.4:1).
"""
from __future__ import annotations

from PySide6.QtGui import QColor, QGuiApplication, QPalette

from ..vocab import SEVERITY_COLORS, STATE_COLORS, NEUTRAL_COLOR, RunState, Severity

# Lighter severity and state colours for a dark background (>= 4.5:1 on #1e1e1e and #2b2b2b).
DARK_SEVERITY_COLORS = {Severity.ERROR: "#FF6B6B", Severity.WARNING: "#FFA94D", Severity.INFO: "#74B9FF"}
DARK_STATE_COLORS = {RunState.LIVE: "#69DB7C", RunState.CRASHED: "#FF6B6B", RunState.STALE: "#FFA94D",
                     RunState.RECORDING_STOPPED: "#FFD43B"}
DARK_ERROR = "#FF6B6B"
LIGHT_ERROR = "#C62828"


def palette() -> QPalette:
    app = QGuiApplication.instance()
    return app.palette() if app is not None else QPalette()


def is_dark(pal: QPalette | None = None) -> bool:
    """The window's background is dark (its lightness below the middle)."""
    pal = pal or palette()
    return pal.color(QPalette.Window).lightness() < 128


def canvas_color(pal: QPalette | None = None) -> QColor:
    """A plot canvas's background: white in a light palette, the palette's Base in a dark one."""
    pal = pal or palette()
    return QColor(pal.color(QPalette.Base)) if is_dark(pal) else QColor("#ffffff")


def text_color(pal: QPalette | None = None) -> str:
    """Main text on a canvas or in rich text (a plot's title)."""
    pal = pal or palette()
    return pal.color(QPalette.Text).name() if is_dark(pal) else "#333333"


def muted_color(pal: QPalette | None = None) -> str:
    """Secondary text (hints, notes, units): between the text and the background, readable on
    both (the hard-coded #555 and #777 of old were near-invisible on a dark palette)."""
    pal = pal or palette()
    if not is_dark(pal):
        return "#555555"
    fg, bg = pal.color(QPalette.Text), pal.color(QPalette.Base)
    mix = 0.72       # mostly text: #e0e0e0 on #1e1e1e gives #a8a8a8 (7:1)
    return QColor(round(fg.red() * mix + bg.red() * (1 - mix)), round(fg.green() * mix + bg.green() * (1 - mix)),
                  round(fg.blue() * mix + bg.blue() * (1 - mix))).name()


def error_color(pal: QPalette | None = None) -> str:
    return DARK_ERROR if is_dark(pal) else LIGHT_ERROR


def severity_color(severity, pal: QPalette | None = None) -> str:
    if is_dark(pal):
        return DARK_SEVERITY_COLORS.get(severity, muted_color(pal))
    return SEVERITY_COLORS.get(severity, NEUTRAL_COLOR)


def state_color(state, pal: QPalette | None = None) -> str:
    """A run state's colour (live green, crashed red...); finished: the muted text colour."""
    if is_dark(pal):
        return DARK_STATE_COLORS.get(state, muted_color(pal))
    return STATE_COLORS.get(state, NEUTRAL_COLOR)


def style_canvas(widget) -> None:
    """A pyqtgraph GraphicsLayoutWidget / PlotWidget / GraphicsView in the palette's colours."""
    widget.setBackground(canvas_color())


def readable_placeholder(widget) -> None:
    """A line edit's placeholder ("filter metrics") in the muted text colour on a dark palette
    (a palette without its own PlaceholderText kept Qt's dark grey: unreadable on #1e1e1e)."""
    if is_dark():
        pal = widget.palette()
        pal.setColor(QPalette.PlaceholderText, QColor(muted_color()))
        widget.setPalette(pal)
