"""Layer heatmap: layers x steps image of a per-layer statistic, with the selected layers'
full-resolution series below it.

The step axis is max-pooled to the pixels shown before ``setImage`` (``LayerStatSource``),
so a 500 x 100 k table stays interactive and memory follows the screen, not the file.
"""
from __future__ import annotations

import html
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QApplication, QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QVBoxLayout

from trainspect.analysis.labels import LayerLabels

from .. import theme
from ... import vocab
from ...layer_data import LayerStatSource
from ...lod import finite_levels, log_levels, robust_levels
from ..model import PALETTE
from ..plain_text import rich, shown, tip
from .flat_view import FlatAwareViewBox
from .lazy import LazyPanel
from .parts import (
    any_width_title, layer_labels,
    CellHover, LogFitAxis, StepAxis, bucket_under, image_with_colorbar, message_label, run_badge, show_run, shrinkable,
    steps_text,
)

MAX_LAYER_TICKS = 40
MAX_AXIS_PX = 260       # the layer axis's widest
AXIS_EXTRA_PX = 34      # the layer axis beside its labels: tick marks, gaps and its rotated title
LABEL_CHARS = (MAX_AXIS_PX - 30) // 6   # at ~6 px a character
MAX_SERIES = 12          # selected layers plotted under the map (the legend counts the rest)
LEGEND_CHARS = 32        # a layer's name in that plot's legend (its tooltip has them whole)
LABEL_PITCH_PX = 18     # a layer label needs this much height, or the labels print over each other
MAP_MIN_ROWS_PX = 180   # the map's rows never get less than this (fewer rows: what names them all)
STEP_AXIS_PX = 40       # the map's step axis under its rows
SERIES_PX = 130         # the selected layers' plot under the map
ZERO_RGBA = (189, 189, 189, 255)   # cells exactly 0 on a log scale: grey, outside viridis
# NaN/Inf cells: magenta, as in the report (app/report/svgplot.NONFINITE_CELL, #ff00ff), outside
# viridis; left blank they read as "not recorded" (the NaN from step 150 on looked like no data).
NONFINITE_RGBA = (255, 0, 255, 255)
NONFINITE_NOTE = "magenta: NaN/Inf"
ZERO_NOTE = "grey cells: exactly 0"
FRACTION_LEVELS = (0.0, 1.0)       # fractions (dead, <= 0, saturated): 1 is always the bright end
FRACTION_TICKS = [(0.0, "0"), (0.5, "0.5"), (1.0, "1")]
NO_LAYER_STATS = ("This run has no per-layer statistics (no layer records yet, or only scalars were "
                  "logged: call rec.watch(model, optimizer) to record gradients, weights and activations).")


def _prefixes(name: str):
    """``a``, ``a.b`` of ``a.b.c``: the dotted names above it."""
    parts = name.split(".")
    return (".".join(parts[:k]) for k in range(1, len(parts)))


def matching_layers(selected, layers) -> list[int]:
    """Rows of ``layers`` named by ``selected`` (a param's module and a module's params match).
    Set lookups over each name's dotted prefixes: comparing every pair took 10.5 s on the GUI
    thread for a finding over 10,000 parameter tensors."""
    chosen = set(selected)
    above = {p for s in chosen for p in _prefixes(s)}     # modules of the selected params
    return [i for i, name in enumerate(layers)
            if name in chosen or name in above or any(p in chosen for p in _prefixes(name))]


def legend_html(names, more: int) -> str:
    """The legend of the selected layers' plot: each name after a square in its curve's colour
    (its row's mark on the map has it too), and how many more are selected than plotted."""
    items = [f"<span style='white-space:nowrap'><span style='color:{PALETTE[k % len(PALETTE)]}'>&#9632;</span>"
             f"&nbsp;{rich(name)}</span>" for k, name in enumerate(names)]
    if more:
        items.append(f"<span style='color:{theme.muted_color()}'>… and {more} more (not plotted)</span>")
    return " &nbsp; ".join(items)


def is_fraction(stat: str) -> bool:
    """The statistic lies in [0, 1] (its spec says ``fraction=True``): dead, <= 0, saturated."""
    spec = vocab.LAYER_STAT_SPECS.get(stat)
    return bool(getattr(spec, "fraction", False))


def colour_scale(overview, stat: str, is_log: bool):
    """``(levels, ticks)`` of a map of ``stat`` whose whole-run overview is ``overview``.

    Fractions are on 0..1 whatever the data (scaled to its range, 100 % dead everywhere was the
    bottom colour of viridis, "healthy"), with 0, 0.5 and 1 labelled. A constant map gets a
    range around its value and that value labelled (its collapsed range had no tick at all).
    ``ticks`` None: the colour bar's own."""
    if is_fraction(stat):
        return FRACTION_LEVELS, [FRACTION_TICKS, []]
    if is_log:    # a few far-out cells must not wash the rest out
        levels = robust_levels(log_levels(overview)[0])
    else:
        levels = finite_levels(overview, symmetric=stat == "act_mean")
    lo, hi = levels
    finite = np.asarray(overview, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size and float(finite.max() - finite.min()) <= 1e-9 * max(1.0, abs(float(finite.max()))):
        value = float(finite[0])
        half = abs(value) * 0.5 or 0.5
        lo, hi = value - half, value + half
        return (lo, hi), [[(value, f"{value:.4g}")], [(lo, f"{lo:.3g}"), (hi, f"{hi:.3g}")]]
    return (lo, hi), None


def hover_text(name: str, first: int, last: int, value: float) -> str:
    return f"<b>{rich(name)}</b> &nbsp; {steps_text(first, last, ' (max)')} &nbsp; = <b>{value:.4g}</b>"


class RowMark(QGraphicsRectItem):
    """The outline of a selected layer's row, in its curve's colour, over the map's columns."""

    def __init__(self, row: int, color):
        super().__init__()
        self.row = row
        pen = pg.mkPen(color, width=2)
        pen.setCosmetic(True)     # 2 px whatever the zoom
        self.setPen(pen)

    def getRegion(self) -> tuple[float, float]:
        """The rows it marks (as a horizontal LinearRegionItem says it)."""
        return float(self.row), float(self.row + 1)


class HeatmapPanel(LazyPanel):
    # (run entry, it has per-layer statistics): the window gives an empty Layers tab's room to
    # the plots (trial14 L5)
    layerDataKnown = Signal(object, bool)

    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.source: LayerStatSource | None = None
        self.is_log = False
        self.zero_note = ""           # "grey cells: exactly 0" under a log-scale map with zeros
        self.nonfinite_note = ""      # "magenta: NaN/Inf" under a map with NaN/Inf cells shown
        self._caption = ""            # the series plot's title, before those notes
        self.rows_note = ""           # which layers are rows ("rows: ReLU-family outputs only")
        self.constant_note = ""       # "constant at 1": the selected layers' series never change
        self.buckets = (np.empty(0), np.empty(0))   # first / last step of each shown column
        self.shown = np.empty((0, 0))                # the raw (not log) values shown, [layers, buckets]
        self.layer_curves: list = []
        self._syncing = False
        self._follow = None           # the steps the scalar plots show (see follow_steps)
        self._image_x = (0.0, 1.0)    # the steps the image spans (the row marks span them too)
        self._half_cell = 0.5         # half a column's width in steps: columns are centred on their steps
        self._legend = ([], 0)        # the plotted layers' names (and how many more) for the caption

        self.stat_combo = QComboBox()
        self.stat_combo.setMinimumWidth(180)
        self.hover_label = shrinkable(QLabel(" "))
        self.hover_label.setTextFormat(Qt.RichText)
        self.run_label = run_badge()
        bar = QHBoxLayout()
        bar.addWidget(self.run_label)
        bar.addSpacing(8)
        self.stat_label = QLabel("statistic:")   # hidden with the combo when there is nothing to pick
        bar.addWidget(self.stat_label)
        bar.addWidget(self.stat_combo)
        bar.addSpacing(12)
        bar.addWidget(self.hover_label, 1)
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.plot = self.canvas.addPlot(row=0, col=0, axisItems={"bottom": StepAxis("bottom")})
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.image, self.colorbar = image_with_colorbar(self.canvas, self.plot, 1, "viridis")
        # A log scale has no colour for 0: zero cells are drawn grey by this layer on top.
        self.zero_image = pg.ImageItem(axisOrder="row-major")
        self.zero_image.setZValue(self.image.zValue() + 1)
        self.plot.addItem(self.zero_image)
        # NaN/Inf cells: magenta, by this layer on top (the colour map has no colour for them).
        self.nonfinite_image = pg.ImageItem(axisOrder="row-major")
        self.nonfinite_image.setZValue(self.image.zValue() + 2)
        self.plot.addItem(self.nonfinite_image)
        self.series_plot = self.canvas.addPlot(row=1, col=0, viewBox=FlatAwareViewBox(),
                                               axisItems={"bottom": StepAxis("bottom"), "left": LogFitAxis("left")})
        self.series_plot.setXLink(self.plot)
        any_width_title(self.series_plot)    # its caption never widens the canvas past the tab
        self.series_plot.setMenuEnabled(False)
        self.series_plot.setMaximumHeight(28)
        self.series_plot.setDownsampling(auto=True, mode="peak")
        self.series_plot.setClipToView(True)
        self.series_plot.setLabel("bottom", "step")
        # Its legend: a list under the canvas, not a box on the curves (a box in the ~100 px
        # plot hid them, lines struck through its names, and it had room for 3 of 8 layers).
        self.legend = shrinkable(QLabel(""))
        self.legend.setTextFormat(Qt.RichText)   # our colour squares; the names in it are escaped
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("font-size: 8pt;")
        self.legend.setVisible(False)
        self.span = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 255, 255, 50), pen=pg.mkPen("#ffcc00", width=2))
        self.span.setVisible(False)
        self.plot.addItem(self.span, ignoreBounds=True)
        self.row_marks: list = []
        self.message = message_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.message)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.legend)

        self._pooled_px = None            # the pixel width the image was last pooled to
        self._tick_names = []             # the layer labels, thinned to the height on resize
        self._lod_timer = QTimer(self)
        self._lod_timer.setSingleShot(True)
        self._lod_timer.setInterval(40)   # re-pool after the pan/zoom settles
        self._lod_timer.timeout.connect(lambda: self.refresh_image(exact=False))
        self._refine_timer = QTimer(self)
        self._refine_timer.setSingleShot(True)
        self._refine_timer.setInterval(250)   # exact pooling from the file once the view rests
        self._refine_timer.timeout.connect(lambda: self.refresh_image(exact=True))
        self.plot.getViewBox().sigXRangeChanged.connect(self._on_range)
        # A resize of a zoomed view changes no step range, only the pixels it spans: pool again,
        # or a narrower view would show more columns than pixels and drop some (a spike's).
        self.plot.getViewBox().sigResized.connect(self._on_resize)
        self.hover = CellHover(self.canvas, self.plot, self.cell_at, self.hover_label, hover_text)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.stat_combo.currentIndexChanged.connect(self._on_combo)
        self.follow_current_run(runs)
        view.heatmapStatChanged.connect(lambda _: self.load(runs.current))
        view.selectedLayersChanged.connect(self._show_selected_layers)
        view.stepRangeChanged.connect(self._apply_step_range)
        view.highlightChanged.connect(self._apply_highlight)
        self.load(runs.current)

    # ------------------------------------------------------------ data
    def _load(self, entry) -> None:
        show_run(self.run_label, entry)
        if entry is None:
            self._release()
            self._fill_stats([], None)
            self.say("no run selected")
            return
        if self.source is None or self.source.run is not entry.run:
            self._release()                   # another run: no stale image while this one is read
            self.say_reading("the layer statistics", entry)
        wanted = self.view.heatmap_stat

        def read_source():
            stats = entry.run.layer_stat_names()
            stat = wanted if wanted in stats else (stats[0] if stats else None)
            return stats, (LayerStatSource(entry.run, stat) if stat is not None else None)

        self.read("source", entry, read_source, lambda got: self._show_source(entry, *got), "layer statistics")

    def _fill_stats(self, stats, stat) -> None:
        self.stat_combo.blockSignals(True)
        self.stat_combo.clear()
        for s in stats:
            self.stat_combo.addItem(vocab.stat_label(s), s)
        if stat is not None:
            self.stat_combo.setCurrentIndex(stats.index(stat))
        self.stat_combo.blockSignals(False)
        for w in (self.stat_label, self.stat_combo):     # an empty "statistic:" combo read as broken
            w.setVisible(bool(stats))

    def _show_source(self, entry, stats, src) -> None:
        """The statistic read in the background arrived: show its overview (GUI thread)."""
        self._fill_stats(stats, src.stat if src is not None else None)
        self.layerDataKnown.emit(entry, bool(stats))
        if src is None:
            self._release()
            self.say(NO_LAYER_STATS)   # say what is missing, not an empty pair of axes
            return
        if not src.layers:   # dead units of a model without a ReLU: no row where the statistic means something
            self._release()
            self.say(f"{vocab.stat_label(src.stat)}: shown for {src.only} only, and this model has none")
            return
        self.say("")
        self._show_plots(True)
        self.source = src
        stat = src.stat
        self.is_log = vocab.LAYER_STAT_SPECS[stat].log and log_levels(src.overview)[1]
        self.colorbar.setLabel("right", self._scale_label(src))
        label = LayerLabels.for_run(entry.run)
        self._layer_ticks([label(n) for n in src.layers])
        # The axis says "layer"; which rows are shown goes under the map: on the rotated axis
        # title "layer (ReLU-family outputs)" was cut to the map's height ("layer (ReLU-family outp").
        self.plot.setLabel("left", "layer")
        self.rows_note = (f"rows: {src.only} only" if src.only
                          else f"{src.hidden} frozen layer(s) not shown" if src.hidden else "")
        self._min_map_height(len(src.layers))
        self.plot.getViewBox().setLimits(yMin=0, yMax=max(1, len(src.layers)))
        self.plot.setYRange(0, max(1, len(src.layers)), padding=0)
        self.refresh_image()
        self._apply_step_range(self.view.step_range)
        self._show_selected_layers(self.view.selected_layers)

    def _scale_label(self, src) -> str:
        label = rich(vocab.stat_label(src.stat))   # an axis label is HTML; a stat's name is the file's
        if not self.is_log:
            return label
        # said under the map, not on the colour bar: its label was cut at 800x600
        self.zero_note = ZERO_NOTE if np.any(np.asarray(src.overview) == 0) else ""
        return f"log10 {label}"

    def say(self, text: str, error: bool = False) -> None:
        super().say(text, error)
        if text:
            self._show_plots(False)

    def _show_plots(self, on: bool) -> None:
        # Hide the plot items, not the canvas: showing the canvas again resizes the view box,
        # and that range change would reach the ViewState as a user zoom (see _on_range).
        for item in (self.plot, self.colorbar, self.series_plot):
            item.setVisible(on)
        if not on:
            self.legend.setVisible(False)

    def _release(self) -> None:
        self.source = None
        self.image.clear()
        self.zero_image.clear()
        self.nonfinite_image.clear()
        self.nonfinite_note = ""
        self.shown = np.empty((0, 0))
        self.buckets = (np.empty(0), np.empty(0))
        self._show_selected_layers([])

    def _min_map_height(self, n_rows: int) -> None:
        """The map keeps room for a label every few rows when a layer's series opens under it
        (60 layers shrank to ~90 px with every 12th row named; trial14 L4); the canvas asks its
        tab for that room, so the series plot under it is never cut off."""
        rows_px = int(min(MAP_MIN_ROWS_PX, max(3 * LABEL_PITCH_PX, n_rows * LABEL_PITCH_PX / 2)))
        self.plot.setMinimumHeight(rows_px + STEP_AXIS_PX)
        self._fit_canvas()

    def _fit_canvas(self) -> None:
        series = self.series_plot.maximumHeight() if self.series_plot.isVisible() else 0
        self.canvas.setMinimumHeight(int(self.plot.minimumHeight() + series + 12))

    def _layer_ticks(self, layers) -> None:
        self._tick_names = layers
        fits = min(MAX_LAYER_TICKS, max(1, int(self.plot.getViewBox().height() // LABEL_PITCH_PX)))
        every = max(1, int(np.ceil(len(layers) / fits)))
        ticks = [(i + 0.5, name) for i, name in zip(range(len(layers)), layer_labels([shown(n) for n in layers], LABEL_CHARS))
                 if i % every == 0]
        self.plot.getAxis("left").setTicks([ticks, []])
        # Same left-axis width above and below: the linked step axes line up on screen. The
        # labels' drawn width, not 7 px a character (24 characters took 200 px for 145 px of
        # text: room the scalar plots above then had to give up to line up with the map).
        axis = self.plot.getAxis("left")
        metrics = QFontMetrics(axis.style.get("tickFont") or QApplication.font())
        text_px = max((metrics.horizontalAdvance(t[1]) for t in ticks), default=30)
        width = int(min(MAX_AXIS_PX, max(60, text_px + AXIS_EXTRA_PX)))
        self.plot.getAxis("left").setWidth(width)
        self.series_plot.getAxis("left").setWidth(width)

    def pixel_width(self) -> int:
        return max(16, int(self.plot.getViewBox().width()))

    def refresh_image(self, exact: bool = True) -> None:
        """Pool the visible step range to the pixel width and show it.

        What the in-memory overview answers is drawn at once; rows it cannot answer are pooled
        from the file on a background reader. ``exact=False`` (during pan/zoom) may answer from
        the coarser overview and schedules the exact version for when the view rests.
        """
        src = self.source
        if src is None or src.n_rows == 0 or self._wanted is None:
            self.image.clear()
            self.zero_image.clear()
            self.nonfinite_image.clear()
            return
        vb = self.plot.getViewBox()
        if vb.autoRangeEnabled()[0] or self.view.step_range is None and self.shown.size == 0:
            lo = hi = None
        else:
            lo, hi = vb.viewRange()[0]
        px = self._pooled_px = self.pixel_width()
        got = src.cached_image(lo, hi, px, exact=exact)
        if got is None:
            self.read("image", self._wanted, lambda: src.image(lo, hi, px),
                      lambda got: self.source is src and self._draw(src, *got), "layer statistics", run=src.run)
            return
        self.reads and self.reads.forget("image")   # an older, slower read must not draw over this
        if not exact and not src.is_exact(lo, hi, px):
            self._refine_timer.start()
        self._draw(src, *got)

    def _draw(self, src, img, first, last) -> None:
        self.shown = img
        self.buckets = (first, last)
        if not len(first):
            self.image.clear()
            self.zero_image.clear()
            self.nonfinite_image.clear()
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = np.log10(np.where(img > 0, img, np.nan)) if self.is_log else np.asarray(img, dtype=np.float64)
        # Levels from the whole-run overview: colours keep their meaning while zooming.
        scale = src.levels_cache.get(self.is_log)
        if scale is None:
            scale = src.levels_cache[self.is_log] = colour_scale(src.overview, src.stat, self.is_log)
        levels, ticks = scale
        self.image.setImage(np.ascontiguousarray(disp, dtype=np.float32), autoLevels=False)
        self.colorbar.setLevels(levels)
        self.colorbar.axis.setTicks(ticks)
        self._draw_zeros(img)
        self._draw_nonfinite(img)
        # Each column is centred on its steps, as the plots draw a step's value at the step
        # itself (a spike at step 40 filled 40..41 here while the curve peaked at 40; trial14 M2).
        step = float(last[-1] - first[0] + 1) / max(1, len(first))
        width = max(1.0, step) if len(first) > 1 else 1.0
        self._half_cell = width / 2.0
        x0 = float(first[0]) - self._half_cell
        x1 = float(last[-1]) + width - self._half_cell
        self._syncing = True
        try:
            rect = QRectF(x0, 0.0, x1 - x0, float(len(src.layers)))
            self.image.setRect(rect)
            self._image_x = (x0, x1)
            self._place_row_marks()
            self.zero_image.setRect(rect)
            self.nonfinite_image.setRect(rect)
        finally:
            self._syncing = False

    def _draw_zeros(self, img) -> None:
        """Grey where a log-scaled cell is exactly 0 (the log image has no value there)."""
        zero = np.asarray(img) == 0 if self.is_log else None
        if zero is None or not zero.any():
            self.zero_image.clear()
            return
        rgba = np.zeros(zero.shape + (4,), dtype=np.uint8)
        rgba[zero] = ZERO_RGBA
        self.zero_image.setImage(rgba, autoLevels=False, levels=(0, 255))

    def _draw_nonfinite(self, img) -> None:
        """Magenta where a cell is NaN or Inf (the report's colour), and say so in the caption."""
        bad = ~np.isfinite(np.asarray(img, dtype=np.float64))
        note = NONFINITE_NOTE if bad.any() else ""
        if note != self.nonfinite_note:
            self.nonfinite_note = note
            self._show_caption()
        if not bad.any():
            self.nonfinite_image.clear()
            return
        rgba = np.zeros(bad.shape + (4,), dtype=np.uint8)
        rgba[bad] = NONFINITE_RGBA
        self.nonfinite_image.setImage(rgba, autoLevels=False, levels=(0, 255))

    def _show_caption(self, caption: str | None = None) -> None:
        """The line under the map (the series plot's title) with the colour notes after it."""
        if caption is not None:
            self._caption = caption
        if not self._caption:
            return
        notes = [n for n in (self.rows_note, self.zero_note if self.is_log else "", self.nonfinite_note,
                             self.constant_note) if n]
        note = f" ({'; '.join(notes)})" if notes else ""
        # The selected layers' colours in this line, between the map and their curves, when they
        # fit (as a list at the tab's bottom they sat away from both; trial14 L2).
        names, more = self._legend
        legend = legend_html(names, more) if names else ""
        fits = bool(legend) and self._title_px(self._caption + ": " + legend + note) <= self._title_room()
        title = self._caption + (": " + legend if fits else "") + note
        self.series_plot.setTitle(title, size="8pt", color=theme.muted_color())
        self.legend.setVisible(bool(names) and not fits)

    def _title_px(self, html_text: str) -> int:
        plain = html.unescape(re.sub(r"<[^>]+>", "", html_text))
        font = QFont(QApplication.font())
        font.setPointSizeF(8.0)
        return QFontMetrics(font).horizontalAdvance(plain)

    def _title_room(self) -> float:
        # centred over the plot, it may run over the axis and colour bar beside it
        vb = self.series_plot.getViewBox().width()
        side = min(self.plot.getAxis("left").width(), self.colorbar.boundingRect().width())
        return vb + 2 * side if vb else self.canvas.width() - 150

    def _on_combo(self, i: int) -> None:
        stat = self.stat_combo.itemData(i)
        if stat:
            self.view.set_heatmap_stat(stat)

    def _on_range(self, vb, rng) -> None:
        if self._syncing:
            return
        self._lod_timer.start()
        if not vb.autoRangeEnabled()[0] and self.source is not None:
            self._syncing = True
            try:
                self.view.set_step_range(tuple(rng))
            finally:
                self._syncing = False

    def _on_resize(self, vb) -> None:
        if self.source is not None and self.pixel_width() != self._pooled_px:
            self._lod_timer.start()
        if self._tick_names:          # as many layer labels as the height has room for
            self._layer_ticks(self._tick_names)
        if self._legend[0]:           # the legend in the caption, or under the canvas
            self._show_caption()

    # ------------------------------------------------------------ hover / click
    def cell_at(self, step: float, row: float):
        """(layer name, first step, last step, value) under a point; None outside the image."""
        src = self.source
        hit = None if src is None else bucket_under(*self.buckets, len(src.layers), step + self._half_cell, row)
        if hit is None:
            return None
        r, i = hit
        return src.layers[r], int(self.buckets[0][i]), int(self.buckets[1][i]), float(self.shown[r, i])

    def _on_click(self, event) -> None:
        vb = self.plot.getViewBox()
        if event.button() != Qt.LeftButton or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p = vb.mapSceneToView(event.scenePos())
        self.click_cell(p.x(), p.y(), add=bool(event.modifiers() & Qt.ControlModifier))

    def click_cell(self, step: float, row: float, add: bool = False) -> None:
        hit = self.cell_at(step, row)
        if hit is None:
            return
        layer = hit[0]
        current = list(self.view.selected_layers) if add else []
        if add and layer in current:
            current.remove(layer)
        else:
            current.append(layer)
        self.view.set_selected_layers(current)

    # ------------------------------------------------------------ selection / span
    def _show_selected_layers(self, selected) -> None:
        for item in self.row_marks:
            self.plot.removeItem(item)
        self.row_marks.clear()
        self.series_plot.clear()
        self.layer_curves = []
        src = self.source
        found = matching_layers(selected, src.layers) if src is not None else []
        rows = found[:MAX_SERIES]
        self._show_legend([src.layers[r] for r in rows], len(found) - len(rows))
        for k, r in enumerate(rows):
            # an outline of the row over the map's columns only (full-width lines ran past the
            # map's end and across the axis; trial14 L2)
            mark = RowMark(r, PALETTE[k % len(PALETTE)])
            self.plot.addItem(mark, ignoreBounds=True)
            self.row_marks.append(mark)
        self._place_row_marks()
        self.series_plot.setLogMode(False, self.is_log and bool(rows))
        self.series_plot.setMaximumHeight(SERIES_PX if rows else 28)
        self._fit_canvas()
        self.series_plot.showAxis("left", bool(rows))
        self.series_plot.showAxis("bottom", bool(rows))
        if src is None:
            return
        self.constant_note = ""
        self._show_caption(f"{rich(vocab.stat_label(src.stat))} of selected layers" if rows
                           else "click a cell to plot that layer")
        if rows:   # full-resolution columns: read from the file in the background
            self.read("columns", self._wanted, lambda: [src.column(r) for r in rows],
                      lambda columns: self.source is src and self._plot_columns(src, columns),
                      "layer series", run=src.run)

    def _place_row_marks(self) -> None:
        """Each selected row's outline spans the image's columns (its steps), not the view."""
        x0, x1 = self._image_x
        for mark in self.row_marks:
            mark.setRect(QRectF(x0, float(mark.row), x1 - x0, 1.0))

    def _plot_columns(self, src, columns) -> None:
        if not any(np.isfinite(values).any() for _, values in columns):
            # A layer that never got a gradient (cut off from the loss, unused) is NaN at every
            # record: an empty plot under a jumble of default ticks said nothing.
            self.series_plot.setMaximumHeight(28)
            self.series_plot.showAxis("left", False)
            self.series_plot.showAxis("bottom", False)
            self._show_caption(f"{rich(vocab.stat_label(src.stat))} of selected layers: never recorded "
                               "(no value at any step)")
            self._show_legend([], 0)
            return
        self._fit_series_range(src, columns)
        for k, (steps, values) in enumerate(columns):
            pen = pg.mkPen(PALETTE[k % len(PALETTE)], width=1.2)
            item = self.series_plot.plot(steps.astype(np.float64), values, pen=pen)
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            self.layer_curves.append(item)

    def _fit_series_range(self, src, columns) -> None:
        """A fraction's plot shows 0..1 (4 layers 100 % dead everywhere were a line on a 0.6-1.4
        axis; trial14 L2); other statistics auto-range, a constant one around its value
        (FlatAwareViewBox). A series that never changes says so in the caption."""
        finite = np.concatenate([np.asarray(v, dtype=np.float64)[np.isfinite(v)] for _, v in columns])
        constant = finite.size > 1 and float(finite.max()) == float(finite.min())
        self.constant_note = f"constant at {finite[0]:.4g}" if constant else ""
        self._show_caption()
        if is_fraction(src.stat) and not self.is_log:
            self.series_plot.disableAutoRange(axis="y")
            self.series_plot.setYRange(0.0, 1.0, padding=0.05)
        else:
            self.series_plot.enableAutoRange(axis="y")

    def _show_legend(self, layers, more: int) -> None:
        """Name the plotted ``layers`` under the canvas, in their curves' colours."""
        names = layer_labels([shown(n) for n in layers], LEGEND_CHARS)
        self._legend = (names, more)
        self.legend.setText(legend_html(names, more))
        self.legend.setToolTip(tip("\n".join(shown(n) for n in layers)))
        self.legend.setVisible(bool(layers))
        self._show_caption()      # in the caption when it fits there (the label is hidden then)

    def step_view(self):
        """The map's ViewBox while the map is on screen, else None (see step_align)."""
        shown_ = self.source is not None and self.plot.isVisible() and self.canvas.isVisible()
        return self.plot.getViewBox() if shown_ else None

    def follow_steps(self, steps) -> None:
        """The scalar plots show steps ``(first, last)``: while no step range is set (nobody
        zoomed) the map shows the same ones, so a step sits at one x in both (its own auto range,
        the image's, began 10 steps right of the plots' padded one; trial14 M2)."""
        self._follow = steps
        if self.view.step_range is None:
            self._apply_step_range(None)

    def _apply_step_range(self, rng) -> None:
        if self._syncing or self.source is None:
            return
        if rng is None:
            rng = self._follow
        self._syncing = True
        try:
            if rng is None:
                self.plot.enableAutoRange(axis="x")
            else:
                self.plot.setXRange(float(rng[0]), float(rng[1]), padding=0)
        finally:
            self._syncing = False
        self._lod_timer.start()

    def _apply_highlight(self, span) -> None:
        if span is None:
            self.span.setVisible(False)
            return
        lo, hi = span     # at the steps the plots above mark (one step: its centred cell)
        self.span.setRegion((lo, hi) if hi > lo else (lo - self._half_cell, lo + self._half_cell))
        self.span.setVisible(True)
