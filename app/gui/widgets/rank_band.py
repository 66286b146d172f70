"""The per-rank spread band on scalar plots: for a distributed run, the min-max of a metric
across its ranks, drawn as a faint band in the run's colour behind its curve (rank 0's)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from ... import rank_view

BAND_ALPHA = 55


class RankBand:
    """The band of one (metric, run) curve. Lives on the plot; updated on live data."""

    def __init__(self, plot, entry, metric: str, x_of_steps):
        self.entry, self.metric, self.plot = entry, metric, plot
        self.x_of_steps = x_of_steps          # steps -> x of the plot's current x mode
        color = QColor(entry.color)
        color.setAlpha(BAND_ALPHA)
        self.low = pg.PlotDataItem(pen=pg.mkPen(None))
        self.high = pg.PlotDataItem(pen=pg.mkPen(None))
        self.fill = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(color))
        self.fill.setZValue(-5)               # behind the curves, above the highlight region
        for item in (self.low, self.high, self.fill):
            plot.addItem(item)
        for item in (self.low, self.high):
            # After addItem (which applies the plot's clip-to-view and downsampling): the band
            # is at most 4000 points, and a curve clipped to the view at creation (before the
            # plot's first auto range) would leave the fill cut there.
            item.setClipToView(False)
            item.setDownsampling(ds=1, auto=False)
        self.update()

    def update(self) -> None:
        ranked = rank_view.ranked(self.entry)
        if ranked is None:
            return
        try:
            steps, lo, hi = rank_view.spread(ranked.matrix(self.metric))
        except Exception:  # noqa: BLE001 - rank 0's file busy (a background read): the next update redraws
            return
        x = self.x_of_steps(steps)
        self.low.setData(x, lo)
        self.high.setData(x, hi)
        self.fill.setToolTip(f"{self.entry.name}: {self.metric}, min-max over {len(ranked.runs)} ranks")

    def remove(self) -> None:
        for item in (self.fill, self.low, self.high):
            if item.scene() is not None:
                self.plot.removeItem(item)


class RankBands:
    """Every band of a ScalarPlotPanel. ``add`` is called for each curve the panel creates;
    bands follow live data and go away with their run."""

    def __init__(self, panel):
        self.panel = panel
        self.bands: dict = {}
        panel.runs.runUpdated.connect(self._on_updated)
        panel.runs.runRemoved.connect(self._on_removed)

    def add(self, plot, entry, metric: str) -> None:
        if rank_view.ranked(entry) is None:
            return
        old = self.bands.pop((metric, entry.key), None)
        if old is not None and old.plot is plot:
            old.remove()
        self.bands[(metric, entry.key)] = RankBand(plot, entry, metric, lambda s, e=entry: self._x(e, s))

    def _x(self, entry, steps) -> np.ndarray:
        """x of steps for this run: the step itself, or the wall time rank 0 logged it at."""
        if self.panel.view.x_mode == "step":
            return np.asarray(steps, dtype=np.float64)
        curve = next((c for (m, k), c in self.panel.curves.items() if k == entry.key and len(c.steps) > 1), None)
        if curve is None:
            return np.asarray(steps, dtype=np.float64)
        order = np.argsort(curve.steps, kind="stable")
        return np.interp(steps, curve.steps[order], curve.x[order])

    def _on_updated(self, entry, n_new: int) -> None:
        rank_view.refresh(entry)
        live = {k: b for k, b in self.bands.items() if b.plot in self.panel.plots.values()}
        self.bands = live                   # a rebuild dropped the plots of the others
        for (metric, key), band in live.items():
            if key == entry.key:
                band.update()
        # ranks that arrived after the curves were drawn (a remote run's other ranks): add their bands
        for (metric, key), curve in list(self.panel.curves.items()):
            if key == entry.key and (metric, key) not in self.bands and metric in self.panel.plots:
                self.add(self.panel.plots[metric], entry, metric)

    def _on_removed(self, entry) -> None:
        for key in [k for k in self.bands if k[1] == entry.key]:
            self.bands.pop(key).remove()
        rank_view.release(entry)
