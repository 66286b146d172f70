"""Pieces the layer panels (heatmap, distributions) build their canvases from."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

NAME_CHARS = 80   # names (runs, metrics, layers) longer than this are cut with "…" in labels


def elide(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with "…" (the full text goes in a tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shrinkable(label: QLabel) -> QLabel:
    """A label whose text never sets the width of its dock or window: a 1,000-character run
    name in it once made the window 10,828 px wide. The layout gives it a width; text that
    does not fit is cut (or wrapped, for word-wrapped labels)."""
    label.setSizePolicy(QSizePolicy.Ignored, label.sizePolicy().verticalPolicy())
    label.setMinimumWidth(0)
    return label


def image_with_colorbar(canvas, plot, col: int, colormap: str, label: str | None = None):
    """A row-major ImageItem in ``plot`` and its fixed colour bar in column ``col`` of ``canvas``."""
    image = pg.ImageItem(axisOrder="row-major")
    plot.addItem(image)
    bar = pg.ColorBarItem(colorMap=pg.colormap.get(colormap), interactive=False, width=12, label=label)
    bar.setImageItem(image)
    canvas.addItem(bar, row=0, col=col)
    return image, bar


def message_label() -> QLabel:
    """A centred label shown instead of empty axes."""
    label = QLabel("")
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)   # the "nothing recorded" explanations are a sentence long
    return label


def point_under_mouse(plot, event):
    """The view coordinates of a SignalProxy mouse-move ``event`` over ``plot``, or None outside it."""
    pos = event[0]
    vb = plot.getViewBox()
    return vb.mapSceneToView(pos) if vb.sceneBoundingRect().contains(pos) else None
