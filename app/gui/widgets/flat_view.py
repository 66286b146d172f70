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
from pyqtgraph.Qt import QtCore

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


# ---------------------------------------------------------------- runs off the scale
# Forty runs of a folder on one loss plot, one of them diverged to -4e30: every other curve was a
# flat line at 0 (trial 17, F13). A run whose values stretch the plot's y range more than
# OFF_SCALE times what the other runs need is left out of the auto range, drawn clipped, and
# named in the plot's title with how far it goes: nothing is hidden without a word.
OFF_SCALE = 100.0
MIN_RUNS = 3            # with two runs there is no "rest" to tell which one is off


def off_scale_runs(bounds: dict) -> dict:
    """``{run: (low, high)}`` y bounds of each run on a plot -> ``{run: (low, high)}`` of the
    runs to leave out of its y range: at most a third of them, each the one whose removal
    shrinks the others' span the most, while it shrinks it more than OFF_SCALE times."""
    runs = {k: (float(lo), float(hi)) for k, (lo, hi) in bounds.items()
            if math.isfinite(lo) and math.isfinite(hi)}
    out: dict = {}
    if len(runs) < MIN_RUNS:
        return out

    def span(keys) -> float:
        return max(runs[k][1] for k in keys) - min(runs[k][0] for k in keys)

    while len(out) < len(runs) // 3:
        kept = [k for k in runs if k not in out]
        whole = span(kept)
        rest = {k: span([j for j in kept if j != k]) for k in kept}
        worst = min(rest, key=rest.get)
        floor = max(rest[worst], 1e-12 * max(1.0, max(abs(v) for k in kept for v in runs[k])))
        if whole <= OFF_SCALE * floor:
            break
        out[worst] = runs[worst]
    return out


class OffScaleViewBox(FlatAwareViewBox):
    """Auto-ranges y over the runs :func:`off_scale_runs` keeps. Items tagged with a ``run_key``
    (and ``run_label``) are a run's lines; ``offScaleChanged`` says which runs were left out."""

    offScaleChanged = QtCore.Signal()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.off_scale: dict = {}      # {run_label: its value furthest out} left out of the last y range

    def childrenBounds(self, frac=None, orthoRange=(None, None), items=None):   # pyqtgraph's names
        bounds = super().childrenBounds(frac, orthoRange, items)
        if items is not None:
            return bounds
        off: dict = {}
        if not self.state["logMode"][1] and bounds[1] is not None:
            yfrac = 1.0 if frac is None else frac[1]
            per_run: dict = {}
            for item in self.addedItems:
                key = getattr(item, "run_key", None)
                bounds_of = getattr(item, "dataBounds", None)
                if key is None or bounds_of is None or not item.isVisible():
                    continue
                lo, hi = bounds_of(1, frac=yfrac, orthoRange=orthoRange[1]) or (None, None)
                if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
                    continue
                was = per_run.get(key)
                per_run[key] = (lo, hi) if was is None else (min(was[0], lo), max(was[1], hi))
            left_out = off_scale_runs(per_run)
            if left_out:
                kept = [it for it in self.addedItems if getattr(it, "run_key", None) not in left_out]
                bounds[1] = super().childrenBounds(frac, orthoRange, kept)[1]
                labels = {getattr(it, "run_key", None): getattr(it, "run_label", "") for it in self.addedItems}
                low, high = bounds[1]
                # each run by the value that is furthest out of the range the others get
                off = {labels.get(k) or str(k): (lo if low - lo > hi - high else hi) for k, (lo, hi) in left_out.items()}
        if off != self.off_scale:
            self.off_scale = off
            self.offScaleChanged.emit()
        return bounds
