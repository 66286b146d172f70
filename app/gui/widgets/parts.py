"""Pieces the layer panels (heatmap, distributions) build their canvases from."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


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
