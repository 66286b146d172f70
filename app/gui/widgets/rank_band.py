"""The per-rank spread band on scalar plots: for a distributed run, the min-max of a metric
across its ranks, drawn as a faint band in the run's colour behind its curve (rank 0's)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from ... import rank_view
from ..plain_text import shown, tip
from ..run_io import LatestReads, locked_read

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
            item.run_key, item.run_label = entry.key, entry.name   # off the scale with its run (flat_view)
            plot.addItem(item)
        for item in (self.low, self.high):
            # After addItem (which applies the plot's clip-to-view and downsampling): the band
            # is at most 4000 points, and a curve clipped to the view at creation (before the
            # plot's first auto range) would leave the fill cut there.
            item.setClipToView(False)
            item.setDownsampling(ds=1, auto=False)

    def show(self, steps, lo, hi, n_ranks: int) -> None:
        """The spread read in the background (see ``RankBands``)."""
        x = self.x_of_steps(steps)
        self.low.setData(x, lo)
        self.high.setData(x, hi)
        self.fill.setToolTip(tip(f"{shown(self.entry.name)}: {shown(self.metric)}, min-max over {n_ranks} ranks"))

    def remove(self) -> None:
        for item in (self.fill, self.low, self.high):
            if item.scene() is not None:
                self.plot.removeItem(item)


class RankBands:
    """Every band of a ScalarPlotPanel. ``add`` is called for each curve the panel creates;
    bands follow live data and go away with their run. The rank files are read on the model's
    background readers (one read per run in flight, the newest wins): the GUI thread only draws."""

    def __init__(self, panel):
        self.panel = panel
        self.bands: dict = {}
        self.reads = LatestReads(panel.runs.io)
        panel.runs.runUpdated.connect(self._on_updated)
        panel.runs.runRemoved.connect(self._on_removed)

    def add(self, plot, entry, metric: str) -> None:
        distributed = rank_view.known(entry)
        if distributed is None:            # not looked at yet: look, then add the bands
            self._read(entry)
            return
        if distributed:
            self._new_band(plot, entry, metric)
            self._read(entry)

    def _new_band(self, plot, entry, metric: str) -> RankBand:
        old = self.bands.pop((metric, entry.key), None)
        if old is not None and old.plot is plot:
            old.remove()
        band = self.bands[(metric, entry.key)] = RankBand(plot, entry, metric, lambda s, e=entry: self._x(e, s))
        return band

    def _read(self, entry, refresh: bool = False) -> None:
        """Read the spread of every metric plotted for ``entry`` in the background, then draw."""
        metrics = [m for (m, k) in self.panel.curves if k == entry.key]
        siblings = rank_view.open_siblings(entry, self.panel.runs.rows())

        def spreads():
            if refresh:
                rank_view.refresh(entry)
            ranked = rank_view.ranked(entry, siblings)
            if ranked is None:
                return None
            names = set(ranked.scalar_names())
            return len(ranked.runs), {m: rank_view.band(rank_view.envelopes(entry, ranked, m))
                                      for m in metrics if m in names}

        # A failed read leaves the bands as they are: the curves and the run's row say the rest.
        self.reads.request(entry.key, entry.key, lambda: locked_read(entry.run, spreads, siblings.values()),
                           lambda got: self._show(entry, got))

    def _show(self, entry, got) -> None:
        if got is None or entry not in self.panel.runs.runs():
            return
        n_ranks, spreads = got
        self._drop_bands_of_gone_plots()
        for metric, spread in spreads.items():
            band = self.bands.get((metric, entry.key))
            if band is None and metric in self.panel.plots and (metric, entry.key) in self.panel.curves:
                band = self._new_band(self.panel.plots[metric], entry, metric)   # known to be distributed now
            if band is not None:
                band.show(*spread, n_ranks)

    def _drop_bands_of_gone_plots(self) -> None:
        # a rebuild dropped the plots of the others
        plots = list(self.panel.plots.values())
        for key in [k for k, b in self.bands.items() if b.plot not in plots]:
            del self.bands[key]

    def _x(self, entry, steps) -> np.ndarray:
        """x of steps for this run: the step itself, or the wall time rank 0 logged it at."""
        if self.panel.view.x_mode == "step":
            return np.asarray(steps, dtype=np.float64)
        curve = next((c for (m, k), c in self.panel.curves.items() if k == entry.key and c.n_points > 1), None)
        if curve is None:
            return np.asarray(steps, dtype=np.float64)
        held_steps, held_x = curve.step_x_pairs()
        order = np.argsort(held_steps, kind="stable")
        return np.interp(steps, held_steps[order], held_x[order])

    def _on_updated(self, entry, n_new: int) -> None:
        # ranks that arrived after the curves were drawn (a remote run's other ranks) get their
        # bands too: the read looks at the ranks again and adds what is missing
        if rank_view.known(entry) is not False:
            self._read(entry, refresh=True)
        plotted = {k for (_, k) in self.panel.curves}
        for other in self.panel.runs.runs():   # runs whose ranks read this row's file through it
            if other.key in plotted and rank_view.known(other) and rank_view.reads_through(other, entry):
                self._read(other)

    def _on_removed(self, entry) -> None:
        for key in [k for k in self.bands if k[1] == entry.key]:
            self.bands.pop(key).remove()
        self.reads.forget(entry.key)
        rank_view.release(entry, self.panel.runs.io)
