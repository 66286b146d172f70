"""The Compare tab's scatter plot: one point per run, a setting on x, a result on y, each point
in its run's color (the table's swatch), its name in the point's tooltip; click a point to
make that run current. The points and the
axes' choice are ``app/sweep_scatter.py``'s; this is the Qt side."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .. import theme
from ...report.svgplot import fmt_value
from ...sweep_scatter import default_axes, log_axis, numeric_keys, points, value_ticks
from ..plain_text import plain
from .parts import shrinkable

POINT_SIZE = 11
HINT_WIDTH = 320
CURRENT_SIZE = 15
MAX_TICKS = 10         # more distinct setting values than this: the axis' own ticks


class SweepScatter(QWidget):
    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self._shown: list = []                  # (entry, RunRow) as given to show()
        self.x_box, self.y_box = QComboBox(), QComboBox()
        self.x_box.setToolTip("a setting that differs between the runs")
        self.y_box.setToolTip("a column of the table")
        for box in (self.x_box, self.y_box):
            box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(12)
            box.currentTextChanged.connect(self._draw)
        self.message = plain(shrinkable(QLabel()))
        # its text must not widen the Compare tab, and with it the window (every tab's hint counts);
        # on a line of its own, wrapped: beside the two boxes it was cut to "4 rur" at 1600x1000
        self.message.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.message.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("x:"))
        bar.addWidget(self.x_box, 1)
        bar.addWidget(QLabel("y:"))
        bar.addWidget(self.y_box, 1)
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.plot = self.canvas.addPlot()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.canvas.setToolTip("one point per run, in its color in the table; click one to make its run current")
        self.plot.hideButtons()
        for side in ("bottom", "left"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)   # "lr (x0.001)" over log ticks read wrong
        self.scatter = pg.ScatterPlotItem(size=POINT_SIZE, hoverable=True, tip=self._tip, pen=pg.mkPen("k", width=0.5))
        self.scatter.sigClicked.connect(self._clicked)
        runs.currentChanged.connect(lambda _entry: self._draw())
        self.plot.addItem(self.scatter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.message)
        lay.addWidget(self.canvas, 1)

    def sizeHint(self) -> QSize:
        # A plot's 600 px hint beside the table made the Compare tab, and with it the window, ask
        # for 1400 px (every tab's hint counts): the splitter shares whatever width there is.
        return QSize(HINT_WIDTH, super().sizeHint().height())

    def show_rows(self, shown, value_titles) -> None:
        """``shown``: (entry, RunRow) of the table; the x choices are their config keys holding
        numbers that differ, the y choices ``value_titles`` (the table's columns)."""
        self._shown = shown
        rows = [r for _, r in shown]
        xs, ys = numeric_keys(rows), list(value_titles)
        x_default, y_default = default_axes(xs, ys)
        for box, items, default in ((self.x_box, xs, x_default), (self.y_box, ys, y_default)):
            keep = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems(items)
            box.setCurrentText(keep if keep in items else (default or ""))
            box.blockSignals(False)
        self._draw()

    def _draw(self) -> None:
        x_key, y_title = self.x_box.currentText(), self.y_box.currentText()
        rows = [r for _, r in self._shown]
        if not x_key or not y_title:
            self.scatter.setData([])
            self.message.setText("open two or more runs of a sweep to plot a result against a setting" if len(rows) < 2
                                 else "no numeric setting differs between these runs" if not x_key
                                 else "no result to plot: these runs logged no loss or metric")
            return
        found = points(rows, x_key, y_title)
        log = log_axis([x for _, x, _ in found])
        axis = self.plot.getAxis("bottom")
        axis.setLogMode(log)
        # The sweep's own values as the ticks (a log axis' minor labels ran into each other)
        ticks = value_ticks([x for _, x, _ in found], MAX_TICKS)
        axis.setTicks(None if ticks is None else [[(math.log10(x) if log else x, fmt_value(x)) for x in ticks]])
        self.plot.setLabel("bottom", x_key + (" (log scale)" if log else ""))
        self.plot.setLabel("left", y_title)
        spots = []
        for i, x, y in found:
            entry, row = self._shown[i]
            current = entry is self.runs.current     # the current run's point: larger, outlined
            spots.append({"pos": (math.log10(x) if log else x, y), "data": (entry.key, row.name, x, y),
                          "brush": pg.mkBrush(entry.color), "size": CURRENT_SIZE if current else POINT_SIZE,
                          "pen": pg.mkPen("k", width=2 if current else 0.5)})
        spots.sort(key=lambda spot: spot["size"])    # drawn last: on top of a point at the same place
        self.scatter.setData(spots)
        self.plot.autoRange(padding=0.12)
        missing = len(rows) - len(found)
        self.message.setText(f"{len(found)} run{'s' if len(found) != 1 else ''}"
                             + (f" ({missing} without {x_key} or {y_title})" if missing else ""))

    @staticmethod
    def _tip(x, y, data) -> str:
        _, name, raw_x, raw_y = data
        return f"{name}\n{fmt_value(raw_x)}, {fmt_value(raw_y)}"

    def _clicked(self, _item, spots, *_args) -> None:
        if not len(spots):
            return
        key = spots[0].data()[0]
        entry = next((e for e in self.runs.runs() if e.key == key), None)
        if entry is not None:
            self.runs.set_current(entry)

    def point_data(self) -> list:
        """(run name, x, y) of the points drawn, with x as given (tests)."""
        return [tuple(p.data()[1:]) for p in self.scatter.points()]

    def axis_is_log(self) -> bool:
        return bool(self.plot.getAxis("bottom").logMode)

