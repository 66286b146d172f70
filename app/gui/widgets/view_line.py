"""A plot line whose y extent over an x range is the line as drawn there, not only its points.

A zoomed-in plot fits its y axis to what is in view (pyqtgraph's auto range of the visible x,
``setAutoVisible``), and pyqtgraph counts only the points inside the x range: a validation loss
logged every 50 steps, zoomed to a finding at steps 0-41, was fitted to its one point at step 0,
and its line to the point at step 50 left the plot at step ~20. Here the line's values where it
crosses the edges of the range count too.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg


def crossings(x, y, at: float) -> np.ndarray:
    """The values of the line through ``(x, y)`` where it crosses ``x = at`` (segments with a
    non-finite end are not drawn: they cross nowhere)."""
    x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
    hit = (np.minimum(x0, x1) < at) & (at < np.maximum(x0, x1)) & np.isfinite(y0) & np.isfinite(y1)
    t = (at - x0[hit]) / (x1[hit] - x0[hit])
    return y0[hit] + t * (y1[hit] - y0[hit])


def edge_values(x, y, x_range) -> np.ndarray:
    """The line's values at both ends of ``x_range`` (none where it does not reach one)."""
    if x is None or len(x) < 2:
        return np.empty(0)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.concatenate([crossings(x, y, float(at)) for at in x_range])


class ViewLine(pg.PlotDataItem):
    """A PlotDataItem whose y bounds over an x range include its :func:`edge_values` there."""

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        lo, hi = super().dataBounds(ax, frac, orthoRange)
        if ax != 1 or orthoRange is None or not self.curve.isVisible():
            return lo, hi
        # The data as drawn (mapped to a log axis, clipped to the view with a point each side)
        edges = edge_values(*self.curve.getData(), orthoRange)
        if not len(edges):
            return lo, hi
        return (min(float(edges.min()), lo if lo is not None else np.inf),
                max(float(edges.max()), hi if hi is not None else -np.inf))
