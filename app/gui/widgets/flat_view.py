"""A ViewBox that shows a constant series around its value.

pyqtgraph gives a zero-height data range the view's previous height (1.0 for a new plot), so a
learning rate held at 3e-3 was drawn as a flat line at "0" between -0.4 and 0.4: its value could
not be read off the axis. Here a flat range on a linear axis gets a band of +-FLAT_BAND of the
value (0.0027 to 0.0033 for 3e-3), the way TensorBoard centres a constant curve; zero, and log
axes (already in decades), keep pyqtgraph's behaviour.
"""
from __future__ import annotations

import math

import pyqtgraph as pg

FLAT_BAND = 0.1


def flat_band(value: float) -> tuple[float, float] | None:
    """The y range to show for a series that is ``value`` everywhere (None: leave it to pyqtgraph)."""
    if not math.isfinite(value) or value == 0:
        return None
    half = abs(value) * FLAT_BAND
    return value - half, value + half


class FlatAwareViewBox(pg.ViewBox):
    def setRange(self, rect=None, xRange=None, yRange=None, *args, **kwargs):   # pyqtgraph names it
        if rect is None and yRange is not None and not self.state["logMode"][1]:
            low, high = yRange
            band = flat_band(float(low)) if low == high else None
            if band is not None:
                yRange = band
        return super().setRange(rect, xRange, yRange, *args, **kwargs)
