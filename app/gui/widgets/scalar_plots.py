"""Scalar plots: one plot per selected metric, x axes linked, every open run overlaid.

Level of detail is pyqtgraph's peak (min/max per pixel) downsampling with clip-to-view, so a
one-step spike stays visible at every zoom; the EMA is computed on the full data and drawn
over the faint raw curve.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget,
)

from ...lod import PeakPyramid, ema

WHOLE_DRAW_POINTS = 20_000   # series up to this long are drawn without downsampling ...
LOD_MIN_POINTS = 8_192       # ... and from this long through a PeakPyramid: 50 runs x 20 k steps
                             # drawn whole were 6 M points per repaint (1.5 s a frame)
from ..model import X_MODES
from .parts import shrinkable
from .rank_band import RankBands

X_LABELS = {"step": "step", "wall": "wall time", "relative": "time since start (s)"}
RAW_ALPHA = 60          # the raw curve stays visible but faint behind the EMA
SHORT_SERIES = 10       # series of at most this many points are drawn raw (an EMA of 3-5 validation
                        # points lagged: it ended at 2.85 where the last value was 2.53), with markers
HIGHLIGHT_BRUSH = (255, 200, 0, 60)
LEFT_AXIS_WIDTH = 58


def time_origin(run) -> float:
    """Run start for relative time: the recorded start time, else the first wall time seen."""
    try:
        return float(run.start_time)
    except Exception:
        return float(run.meta.get("start_time") or 0.0)


NOTE_COLOR = "#C62828"


class XExtent(pg.GraphicsObject):
    """Invisible item spanning the x range of every curve in the panel.

    The x axes are linked, but each plot auto-ranges to its own data and the last one wins:
    a metric with a single point, or one logged only for the first steps, squeezed every
    plot to its few steps. With this item in each plot they all auto-range to the union.
    """

    def __init__(self):
        super().__init__()
        self.span = None

    def set_span(self, span) -> None:
        if span != self.span:
            self.span = span
            self.informViewBoundsChanged()

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        return self.span if ax == 0 and self.span is not None else (None, None)

    def boundingRect(self):
        return QRectF()

    def paint(self, *args):
        pass


def value_counts(values) -> tuple[int, int, int]:
    """``(points, finite values, finite values <= 0)`` of one curve (see ``plot_note``)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    return len(v), int(finite.size), int((finite <= 0).sum())


def plot_note(counts, log_y: bool) -> str:
    """Why a plot shows (part of) nothing: all values NaN/Inf, or <= 0 on a log axis.

    ``counts``: the ``value_counts`` of each curve in the plot (kept per curve, so 50 runs
    do not rescan every curve whenever one more arrives)."""
    counts = list(counts)
    if not any(n for n, _, _ in counts):
        return "no data"
    n_finite = sum(f for _, f, _ in counts)
    if n_finite == 0:
        return "no finite values (all NaN / Inf)"
    if log_y:
        n_bad = sum(b for _, _, b in counts)
        if n_bad == n_finite:
            return "no positive values: nothing to draw on a log axis"
        if n_bad:
            return f"{n_bad} values ≤ 0 not drawn (log axis)"
    return ""


class Curve:
    """One (metric, run) pair: raw and smoothed plot items plus the data they show."""

    def __init__(self, plot: pg.PlotItem, entry, metric: str):
        self.entry = entry
        self.metric = metric
        color = QColor(entry.color)
        faint = QColor(color)
        faint.setAlpha(RAW_ALPHA)
        self.raw = pg.PlotDataItem(pen=pg.mkPen(faint, width=1), name=entry.name)
        # 1-px pens: Qt's raster engine draws wider lines 2-3x slower (measured: pan of a
        # 10 M-point curve 7 ms at width 1, 26 ms at width 2).
        self.smooth = pg.PlotDataItem(pen=pg.mkPen(color, width=1))
        for item in (self.raw, self.smooth):
            plot.addItem(item)
            # After addItem (which applies the plot's own settings). Peak LOD: min and max
            # per pixel column -- never sampling, so spikes survive.
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
        self.steps = np.empty(0, np.int64)
        self.x = np.empty(0)
        self.values = np.empty(0)
        self.smoothed = np.empty(0)
        self._ema_state = None
        self._ema_weight = None
        self._pyramids = None   # (raw, smooth) PeakPyramids for long series
        self.counts = (0, 0, 0)  # value_counts(values)
        self.x_span = None       # (min, max) of the finite x, None if there are none
        self._view = (None, None, 1000)

    def update(self, series, x: np.ndarray, weight: float) -> None:
        n_finite = int(np.isfinite(series.values).sum())
        short = n_finite <= SHORT_SERIES
        if short:
            weight = 0.0        # shown raw: smoothing a handful of points only hides the last one
        n_old = len(self.values)
        appended = (
            self._ema_weight == weight and 0 < n_old <= len(series.steps)
            and series.steps[n_old - 1] == self.steps[-1]
        )
        self.steps, self.values, self.x = series.steps, series.values, x
        if appended and len(series.steps) > n_old:
            # Live tail: continue the EMA from where it stopped instead of recomputing it.
            tail, self._ema_state = ema(series.values[n_old:], weight, self._ema_state)
            self.smoothed = np.concatenate([self.smoothed, tail])
        elif not appended:
            self.smoothed, self._ema_state = ema(series.values, weight)
            self._ema_weight = weight
        self._pyramids = None
        self.counts = value_counts(series.values)
        fx = x[np.isfinite(x)] if len(x) else x
        self.x_span = (float(fx.min()), float(fx.max())) if len(fx) else None
        # A single point draws no line, a handful barely one: mark them (a metric logged once,
        # a validation loss logged every few hundred steps).
        marked = 0 < n_finite <= SHORT_SERIES
        self.raw.setSymbol("o" if marked else None)
        if marked:
            self.raw.setSymbolSize(6)
            self.raw.setSymbolBrush(pg.mkBrush(self.entry.color))
            self.raw.setSymbolPen(None)
        # pyqtgraph sizes its peak buckets from the view range, so a curve narrower than a
        # pixel (a short run overlaid on a long one) got one bucket larger than itself and
        # drew nothing. Short series are cheap to draw whole (20 k points ~3 ms).
        auto = len(x) > WHOLE_DRAW_POINTS
        for item in (self.raw, self.smooth):
            item.setDownsampling(ds=1, auto=auto, method="peak")
        if len(x) >= LOD_MIN_POINTS:
            raw = PeakPyramid(x, series.values, min_points=LOD_MIN_POINTS)
            if raw.usable:
                smooth = PeakPyramid(x, self.smoothed, min_points=LOD_MIN_POINTS) if weight > 0 else None
                self._pyramids = (raw, smooth)
        if weight > 0:
            self.smooth.setVisible(True)
            self.raw.setPen(pg.mkPen(self._faint(), width=1))
        else:
            self.smooth.setData([], [])
            self.smooth.setVisible(False)
            self.raw.setPen(pg.mkPen(QColor(self.entry.color), width=1))
        self.show_view(*self._view, force=True)

    def show_view(self, x0, x1, n_px: int, force: bool = False) -> None:
        """Give the plot items what the x range [x0, x1] needs (None = all data).

        Series below LOD_MIN_POINTS are handed over whole once; pyqtgraph's peak
        downsampling and clip-to-view reduce them per frame. Longer ones get the pyramid
        level with a few min/max pairs per pixel, so a redraw never touches 10 M points.
        """
        self._view = (x0, x1, n_px)
        if self._pyramids is None:
            if force:
                self.raw.setData(self.x, self.values)
                if self.smooth.isVisible():
                    self.smooth.setData(self.x, self.smoothed)
            return
        raw, smooth = self._pyramids
        self.raw.setData(*raw.view(x0, x1, n_px))
        if smooth is not None and self.smooth.isVisible():
            self.smooth.setData(*smooth.view(x0, x1, n_px))

    def _faint(self) -> QColor:
        c = QColor(self.entry.color)
        c.setAlpha(RAW_ALPHA)
        return c

    def value_at(self, x: float):
        """(step, raw value, smoothed value) of the point nearest to ``x``; None if empty."""
        if len(self.x) == 0:
            return None
        i = int(np.clip(np.searchsorted(self.x, x), 1, len(self.x) - 1)) if len(self.x) > 1 else 0
        if len(self.x) > 1 and abs(self.x[i - 1] - x) <= abs(self.x[i] - x):
            i -= 1
        return int(self.steps[i]), float(self.values[i]), float(self.smoothed[i]) if len(self.smoothed) else None


class ScalarPlotPanel(QWidget):
    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.plots: dict[str, pg.PlotItem] = {}
        self.extents: dict[str, XExtent] = {}     # per plot: the union x range (see XExtent)
        self.curves: dict[tuple[str, str], Curve] = {}
        self.regions: list[pg.LinearRegionItem] = []
        self.vlines: list[pg.InfiniteLine] = []
        self._xmap = None          # (steps, x) of the reference run, for step <-> x conversion
        self._syncing = False

        self.x_combo = QComboBox()
        self.x_combo.addItems([X_LABELS[m] for m in X_MODES])
        self.x_combo.setToolTip("x axis (X cycles)")
        self.smooth_slider = QSlider(Qt.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setFixedWidth(140)
        self.smooth_label = QLabel()
        self.log_check = QCheckBox("log y")
        self.log_check.setToolTip("logarithmic y axis (L)")
        self.reset_button = QPushButton("Reset view")
        self.reset_button.setToolTip("show all data (R)")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("x:"))
        bar.addWidget(self.x_combo)
        bar.addSpacing(12)
        bar.addWidget(QLabel("smoothing:"))
        bar.addWidget(self.smooth_slider)
        bar.addWidget(self.smooth_label)
        bar.addSpacing(12)
        bar.addWidget(self.log_check)
        bar.addWidget(self.reset_button)
        bar.addStretch(1)
        self.readout = shrinkable(QLabel(" "))
        self.readout.setTextFormat(Qt.RichText)
        self.readout.setMinimumHeight(18)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.empty_label = QLabel("Open a run (File > Open or drop a file here) and pick metrics on the left.")
        self.empty_label.setAlignment(Qt.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.readout)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.empty_label)
        self._sync_controls()

        self.x_combo.currentIndexChanged.connect(lambda i: view.set_x_mode(X_MODES[i]))
        self.smooth_slider.valueChanged.connect(lambda v: view.set_smoothing(v / 100.0))
        self.log_check.toggled.connect(view.set_log_y)
        self.reset_button.clicked.connect(view.reset_view)
        view.metricsChanged.connect(self.rebuild)
        view.xModeChanged.connect(self.rebuild)
        view.smoothingChanged.connect(self._on_smoothing)
        view.logYChanged.connect(self._on_log_y)
        view.stepRangeChanged.connect(self._apply_step_range)
        view.highlightChanged.connect(self._apply_highlight)
        runs.runAdded.connect(self._add_run)
        runs.runRemoved.connect(self._remove_run)
        runs.runUpdated.connect(self._on_run_updated)
        self._mouse_proxy = pg.SignalProxy(self.canvas.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse)
        self.bands = RankBands(self)     # distributed runs: min-max across ranks behind each curve
        self.rebuild()

    # ------------------------------------------------------------ building
    def _sync_controls(self) -> None:
        v = self.view
        for w, setter in ((self.x_combo, lambda: self.x_combo.setCurrentIndex(X_MODES.index(v.x_mode))),
                          (self.smooth_slider, lambda: self.smooth_slider.setValue(round(v.smoothing * 100))),
                          (self.log_check, lambda: self.log_check.setChecked(v.log_y))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)
        self.smooth_label.setText(f"{v.smoothing:.2f}")

    def rebuild(self, *_):
        """Recreate plots for the selected metrics (and curves for every open run)."""
        self._sync_controls()
        self.canvas.clear()
        self.plots.clear()
        self.extents.clear()
        self.curves.clear()
        self.regions.clear()
        self.vlines.clear()
        self._xmap = None
        metrics = self.view.metrics
        entries = self.runs.runs()
        self.empty_label.setVisible(not metrics or not entries)
        first = None
        # Plots and links first, data second, auto range last: adding data to linked plots
        # one by one would re-range (and re-downsample) every earlier plot each time.
        for row, metric in enumerate(metrics):
            axis = {"bottom": pg.DateAxisItem()} if self.view.x_mode == "wall" else None
            plot = self.canvas.addPlot(row=row, col=0, axisItems=axis)
            plot.disableAutoRange()
            plot.setTitle(html.escape(metric), size="9pt", color="#333")   # a name is text, not HTML
            # No grid: alpha-blended grid lines across the plot cost ~30 ms per redraw offscreen.
            plot.setLogMode(False, self.view.log_y)
            plot.setMenuEnabled(False)
            plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)   # stacked plots line up pixel for pixel
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            if row < len(metrics) - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
            else:
                plot.setLabel("bottom", X_LABELS[self.view.x_mode])
            self.plots[metric] = plot
            extent = XExtent()
            plot.addItem(extent)
            self.extents[metric] = extent
            vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888", width=1, style=Qt.DashLine))
            vline.setVisible(False)
            plot.addItem(vline, ignoreBounds=True)
            self.vlines.append(vline)
            region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(HIGHLIGHT_BRUSH), pen=pg.mkPen(None))
            region.setZValue(-10)
            region.setVisible(False)
            plot.addItem(region, ignoreBounds=True)
            self.regions.append(region)
        for entry in entries:
            self._add_curves(entry, list(self.plots))
        self._update_extents()
        for plot in self.plots.values():
            plot.enableAutoRange()
        for plot in self.plots.values():
            plot.getViewBox().sigXRangeChanged.connect(lambda vb, rng, plot=plot: self._feed_view(plot))
            self._feed_view(plot)
        if first is not None:
            first.getViewBox().sigXRangeChanged.connect(self._on_user_range)
        self._apply_highlight(self.view.highlight)
        self._apply_step_range(self.view.step_range)

    def _add_curves(self, entry, metrics) -> None:
        for metric in metrics:
            plot = self.plots.get(metric)
            series = entry.series(metric)
            if plot is None or series is None or (metric, entry.key) in self.curves:
                continue
            curve = Curve(plot, entry, metric)
            curve.update(series, self._x_of(entry, series), self.view.smoothing)
            self.curves[(metric, entry.key)] = curve
            self.bands.add(plot, entry, metric)
            if self._xmap is None or len(series.steps) > len(self._xmap[0]):
                self._set_xmap(series, curve.x)

    def _add_run(self, entry) -> None:
        """A run was opened: overlay its curves on the existing plots (no rebuild)."""
        self.empty_label.setVisible(not self.view.metrics)
        self._add_curves(entry, list(self.plots))
        self._update_extents()
        for curve in self._curves_of(entry):   # the others already show this view
            plot = self.plots[curve.metric]
            curve.show_view(*self._view_of(plot))

    def _remove_run(self, entry) -> None:
        """A run was closed: drop its curves and release their data."""
        for key in [k for k in self.curves if k[1] == entry.key]:
            curve = self.curves.pop(key)
            plot = self.plots.get(key[0])
            if plot is not None:
                plot.removeItem(curve.raw)
                plot.removeItem(curve.smooth)
        self._xmap = None
        for curve in self.curves.values():
            if self._xmap is None or len(curve.steps) > len(self._xmap[0]):
                self._set_xmap(curve.entry.series(curve.metric), curve.x)
        self.empty_label.setVisible(not self.view.metrics or not self.runs.runs())
        self._update_extents()

    def _update_extents(self) -> None:
        """Every plot spans the x range of all curves; titles say why a plot is (partly) empty."""
        lo, hi = np.inf, -np.inf
        for curve in self.curves.values():
            if curve.x_span is not None:
                lo, hi = min(lo, curve.x_span[0]), max(hi, curve.x_span[1])
        span = (lo, hi) if lo <= hi else None
        for extent in self.extents.values():
            extent.set_span(span)
        self._update_titles()

    def _update_titles(self) -> None:
        for metric, plot in self.plots.items():
            counts = [c.counts for (m, _), c in self.curves.items() if m == metric]
            note = plot_note(counts, self.view.log_y) if self.runs.runs() else ""
            title = html.escape(metric)
            if note:
                title += f" <span style='color:{NOTE_COLOR}'>— {html.escape(note)}</span>"
            plot.setTitle(title, size="9pt", color="#333")

    def _view_of(self, plot) -> tuple:
        """``(x0, x1, pixels)`` the curves of ``plot`` should show (None, None = everything)."""
        vb = plot.getViewBox()
        x0 = x1 = None
        if not vb.autoRangeEnabled()[0]:
            x0, x1 = vb.viewRange()[0]
        return x0, x1, max(100, int(vb.width()))

    def _curves_of(self, entry) -> list:
        return [c for (_, key), c in self.curves.items() if key == entry.key]

    def _feed_view(self, plot) -> None:
        view = self._view_of(plot)
        for curve in self.curves.values():
            if self.plots.get(curve.metric) is plot:
                curve.show_view(*view)

    def _x_of(self, entry, series) -> np.ndarray:
        mode = self.view.x_mode
        if mode == "step":
            return series.steps.astype(np.float64)
        if mode == "wall":
            return np.asarray(series.wall, dtype=np.float64)
        return np.asarray(series.wall, dtype=np.float64) - time_origin(entry.run)

    def _set_xmap(self, series, x) -> None:
        steps = series.steps.astype(np.float64)
        if len(steps) > 1 and not np.all(steps[1:] >= steps[:-1]):   # e.g. a resumed run
            order = np.argsort(steps, kind="stable")
            steps, x = steps[order], x[order]
        self._xmap = (steps, np.maximum.accumulate(x) if len(x) else x)

    def step_to_x(self, steps):
        if self.view.x_mode == "step" or self._xmap is None or len(self._xmap[0]) < 2:
            return np.asarray(steps, dtype=np.float64)
        s, x = self._xmap
        return np.interp(steps, s, x)

    def x_to_step(self, xs):
        if self.view.x_mode == "step" or self._xmap is None or len(self._xmap[0]) < 2:
            return np.asarray(xs, dtype=np.float64)
        s, x = self._xmap
        return np.interp(xs, x, s)

    # ------------------------------------------------------------ model -> widgets
    def _on_smoothing(self, weight: float) -> None:
        self._sync_controls()
        for (metric, key), curve in self.curves.items():
            series = curve.entry.series(metric)
            curve._ema_weight = None  # force a full recompute with the new weight
            curve.update(series, curve.x, weight)

    def _on_log_y(self, on: bool) -> None:
        self._sync_controls()
        for plot in self.plots.values():
            plot.setLogMode(False, on)
        self._update_titles()

    def _on_run_updated(self, entry, n_new: int) -> None:
        """Live data: append to the existing curves (new metrics need a rebuild)."""
        missing = [m for m in self.view.metrics if (m, entry.key) not in self.curves and entry.series(m) is not None]
        if missing:   # metrics this run logged for the first time just now
            self._add_curves(entry, missing)
        for (metric, key), curve in self.curves.items():
            if key == entry.key:
                series = entry.series(metric)
                if series is not None and len(series.steps) != len(curve.steps):
                    curve.update(series, self._x_of(entry, series), self.view.smoothing)
        self._update_extents()

    def _apply_step_range(self, rng) -> None:
        if not self.plots:
            return
        first = next(iter(self.plots.values()))
        self._syncing = True
        try:
            if rng is None:
                for p in self.plots.values():
                    p.enableAutoRange()
            else:
                x0, x1 = self.step_to_x(np.array(rng, dtype=np.float64))
                first.setXRange(float(x0), float(x1), padding=0)
                for p in self.plots.values():
                    p.enableAutoRange(axis="y")
                    p.setAutoVisible(y=True)
        finally:
            self._syncing = False

    def _apply_highlight(self, span) -> None:
        for region in self.regions:
            if span is None:
                region.setVisible(False)
            else:
                x0, x1 = self.step_to_x(np.array(span, dtype=np.float64))
                if x1 <= x0:
                    x1 = x0 + max(1e-9, abs(x0) * 1e-6)
                region.setRegion((float(x0), float(x1)))
                region.setVisible(True)

    # ------------------------------------------------------------ widgets -> model
    def _on_user_range(self, vb, rng) -> None:
        # Only user pan/zoom (auto range off) becomes the model's range; auto-ranging on
        # new data must not pin the view.
        if self._syncing or vb.autoRangeEnabled()[0]:
            return
        lo, hi = self.x_to_step(np.array(rng, dtype=np.float64))
        self._syncing = True
        try:
            self.view.set_step_range((lo, hi))
        finally:
            self._syncing = False

    def _on_mouse(self, event) -> None:
        pos = event[0]
        for metric, plot in self.plots.items():
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                x = vb.mapSceneToView(pos).x()
                self.show_crosshair(x)
                return

    def show_crosshair(self, x: float) -> str:
        """Move the crosshair to ``x`` (plot units) and show exact values; returns the text."""
        for line in self.vlines:
            line.setPos(x)
            line.setVisible(True)
        parts = []
        step_txt = None
        for metric in self.plots:
            vals = []
            for (m, key), curve in self.curves.items():
                if m != metric:
                    continue
                hit = curve.value_at(x)
                if hit is None:
                    continue
                step, raw, smooth = hit
                step_txt = step_txt or f"step {step}"
                txt = f"{raw:.6g}"
                if f"step {step}" != step_txt:   # a sparser metric's nearest point is elsewhere: say where
                    txt += f" <span style='color:#777'>@ step {step}</span>"
                if self.view.smoothing > 0 and smooth is not None:
                    txt += f" <span style='color:#777'>(ema {smooth:.4g})</span>"
                vals.append(f"<span style='color:{curve.entry.color}'>&#9632;</span> {txt}")
            if vals:
                parts.append(f"<b>{html.escape(metric)}</b> " + " ".join(vals))
        text = (f"<b>{step_txt}</b> &nbsp; " if step_txt else "") + " &nbsp;|&nbsp; ".join(parts)
        self.readout.setText(text or " ")
        return self.readout.text()
