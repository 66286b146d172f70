"""LR range test tab: a sweep run (``trainspect.lr_range_test``) as loss against learning rate
on a log x axis, the smoothed loss over the raw one, and the suggested LR marked.

A sweep's steps mean nothing to a user (the LR is what changes), so the scalar plots against
step are no help for it. The tab shows the current run if it is a sweep, else the first open
sweep: opened beside a training run, the advisor quotes its suggestion in LR fixes.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout

from trainspect.analysis.lr_range import is_sweep, read_sweep

from .. import theme
from ..plain_text import rich
from .lazy import LazyPanel
from .parts import message_label, shrinkable

RAW_PEN = (31, 119, 180, 90)
SMOOTH_PEN = (31, 119, 180)
SUGGESTED_PEN = (46, 125, 50)
MIN_LOSS_PEN = (120, 120, 120)
# Plain text (the message label shows text as typed: its <br><code> tags were on screen).
NO_SWEEP = ("no LR range test open. Run one on your model, then open its file beside your run:\n\n"
            "from trainspect import lr_range_test\n"
            "result = lr_range_test(model, optimizer, batches, train_step, 'lr_sweep.h5')")


def sweep_entry(runs):
    """The entry to show: the current run if it is a sweep, else the first open sweep, else None."""
    current = runs.current
    if current is not None and current.ready and is_sweep(current.run):
        return current
    return next((e for e in runs.runs() if e.ready and is_sweep(e.run)), None)


def sweep_caption(sweep) -> str:
    name = rich(sweep.name or "LR range test")
    if sweep.suggested is None:
        return f"<b>{name}</b>: {html.escape(sweep.reason)}"
    return (f"<b>{name}</b>: suggested LR <b style='color:{theme.state_color(theme.RunState.LIVE)}'>{sweep.suggested:.3g}</b> "
            f"({html.escape(sweep.reason)}; {len(sweep.lr)} steps)")


class LRSweepPanel(LazyPanel):
    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.sweep = None
        self.caption = shrinkable(QLabel(""))
        self.caption.setWordWrap(True)
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.plot = self.canvas.addPlot()
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "learning rate (log scale)")
        self.plot.setLabel("left", "training loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(10, -10))     # bottom left: the flat start of the curve is at the top
        self.raw = self.plot.plot(pen=pg.mkPen(RAW_PEN, width=1), name="loss")
        self.smooth = self.plot.plot(pen=pg.mkPen(SMOOTH_PEN, width=2), name="smoothed loss")
        # pyqtgraph places items of a log axis at log10(x): the markers sit at log10(LR).
        self.suggested_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(SUGGESTED_PEN, width=2),
                                              label="suggested", labelOpts={"position": 0.95, "color": SUGGESTED_PEN})
        self.min_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(MIN_LOSS_PEN, width=1, style=pg.QtCore.Qt.DashLine),
                                        label="minimum", labelOpts={"position": 0.8, "color": MIN_LOSS_PEN})
        for line in (self.suggested_line, self.min_line):
            self.plot.addItem(line, ignoreBounds=True)
            line.hide()
        self.message = message_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.caption)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.message, 1)
        runs.currentChanged.connect(lambda e: self.load(sweep_entry(runs)))
        runs.runAdded.connect(lambda e: self.load(sweep_entry(runs)))
        runs.runRemoved.connect(lambda e: self.load(sweep_entry(runs)))
        self.load(sweep_entry(runs))

    @staticmethod
    def sweep_is_current(entry) -> bool:
        return entry is not None and entry.ready and is_sweep(entry.run)

    def _release(self) -> None:
        self.sweep = None

    def _load(self, entry) -> None:
        if entry is None:
            self.show_sweep(None)
            return
        if self.sweep is None:
            self.say_reading("the LR range test", entry)
        self.read("sweep", entry, lambda: read_sweep(entry.run), self.show_sweep, "the LR range test")

    def show_sweep(self, sweep) -> None:
        """Plot ``sweep`` (an ``analysis.lr_range.LRSweep``), or say that none is open."""
        self.sweep = sweep
        if sweep is None or not len(sweep.lr):
            for item in (self.raw, self.smooth):
                item.setData([], [])
            self.suggested_line.hide()
            self.min_line.hide()
            self.caption.setText("")
            self.message.setText(NO_SWEEP if sweep is None else "the LR range test recorded no step")
            self.message.show()
            self.canvas.hide()      # say what is missing, not an empty pair of axes with a legend
            return
        self.message.hide()
        self.canvas.show()
        lr = np.asarray(sweep.lr, np.float64)
        ok = np.isfinite(lr) & (lr > 0)
        self.raw.setData(lr[ok], np.asarray(sweep.loss, np.float64)[ok])
        smoothed = np.asarray(sweep.smoothed, np.float64)[ok]
        self.smooth.setData(lr[ok], smoothed) if np.isfinite(smoothed).any() else self.smooth.setData([], [])
        self._mark(self.suggested_line, sweep.suggested, "suggested LR {:.3g}")
        self._mark(self.min_line, sweep.min_loss_lr, "loss minimum {:.3g}")
        self.caption.setText(sweep_caption(sweep))
        self._fit_y(sweep)

    @staticmethod
    def _mark(line, lr, text: str) -> None:
        if lr is None or not lr > 0:
            line.hide()
            return
        line.setValue(np.log10(lr))
        line.label.setFormat(text.format(lr))
        line.show()

    def _fit_y(self, sweep) -> None:
        """The interesting part is the descent: clip the y range above the diverged tail."""
        loss = np.asarray(sweep.smoothed if np.isfinite(sweep.smoothed).any() else sweep.loss, np.float64)
        loss = loss[np.isfinite(loss)]
        if loss.size < 2:
            return
        raw = np.asarray(sweep.loss, np.float64)
        raw = raw[np.isfinite(raw)]
        low = min(float(loss.min()), float(raw.min()) if raw.size else math.inf)
        start = float(loss[: max(1, loss.size // 10)].max())
        high = max(start, low) + 0.1 * max(abs(start - low), 1e-6)
        self.plot.setYRange(low - 0.05 * (high - low), high, padding=0)
