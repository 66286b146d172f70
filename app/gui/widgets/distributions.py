"""Distributions: a layer's weight/gradient histograms over time (value bins x steps) and the
recorded weight-matrix snapshots with a step slider."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout

from .. import theme
from ... import vocab
from ...layer_data import histogram_series, snapshot_series
from ...lod import finite_levels, rebin_histograms
from ..plain_text import shown as shown_name
from .lazy import LazyPanel
from .parts import StepAxis, image_with_colorbar, layer_labels, message_label, run_badge, show_run, shrinkable

HIST_DISPLAY_BINS = 96
# The histograms' value axis: one for all steps, or each step on its own +-max|value|. On one
# axis a step-0 layer at +-0.2 was a 1-px line beside later weights at +-30 (trial14 L8).
SCALE_SHARED = "one value axis"
SCALE_EACH = "each step ÷ max |value|"
EACH_STEP_FROM = 10.0     # records' max |value| this many times apart: open with SCALE_EACH
HIST_COLUMNS = 2048      # the histogram image's columns over the steps (more when there are more records)
TITLE_NAME = 32          # characters of a layer name in a plot title


def selected_index(names, selected) -> int | None:
    """Index in ``names`` of the first selected layer (a module selects its first parameter)."""
    for sel in selected:
        hit = next((i for i, n in enumerate(names) if n == sel or n.startswith(sel + ".")), None)
        if hit is not None:
            return hit
    return None


def record_columns(steps, end: int) -> np.ndarray:
    """The record each of equal columns over steps [steps[0], end) shows: the last one at or
    before the column's start. A record's band runs to the next record and the last one's to
    ``end``, the run's end (bands as wide as the mean gap drew the record at step 200 of a
    300-step run, recorded every 200 steps, out to step 400)."""
    n = int(min(end - steps[0], max(HIST_COLUMNS, len(steps))))
    starts = steps[0] + (end - steps[0]) * np.arange(n) / n
    return np.searchsorted(steps, starts, side="right") - 1


def record_scales(ranges) -> np.ndarray:
    """Each record's max |value| (NaN for a record without a valid range)."""
    ranges = np.asarray(ranges, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        m = np.abs(ranges).max(axis=1) if ranges.size else np.empty(0)
        ok = np.isfinite(ranges).all(axis=1) & (ranges[:, 1] >= ranges[:, 0]) if ranges.size else np.empty(0, bool)
    return np.where(ok, m, np.nan)


def rebin_each_record(counts, ranges, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Every histogram on its own symmetric grid, value / its max |value| in [-1, 1]:
    ``(image [R, n_bins], scales [R])``. Counts are spread linearly inside their bins, as
    ``lod.rebin_histograms`` does on the shared grid; a record without a valid range (or
    counts) is all zero, one whose values are all equal is one bin (0: the middle one)."""
    counts = np.asarray(counts, dtype=np.float64)
    scales = record_scales(ranges)
    out = np.zeros((counts.shape[0], n_bins))
    for r in np.flatnonzero(np.isfinite(scales) & (counts.sum(axis=1) > 0)):
        a, b = (float(v) for v in ranges[r])
        m = scales[r]
        if b <= a:                      # every value equal (0 included): one bin, at a / m
            out[r, min(int((a / m + 1) / 2 * n_bins) if m > 0 else n_bins // 2, n_bins - 1)] = counts[r].sum()
            continue
        edges, cdf = np.linspace(a, b, counts.shape[1] + 1), np.concatenate([[0.0], np.cumsum(counts[r])])
        out[r] = np.diff(np.interp(np.linspace(-m, m, n_bins + 1), edges, cdf))
    return out, scales


def default_scale(scales) -> str:
    """SCALE_EACH when one axis would flatten a record: the records' max |value| differ by
    EACH_STEP_FROM or more (all-zero records aside)."""
    s = np.asarray(scales, dtype=np.float64)
    s = s[np.isfinite(s) & (s > 0)]
    return SCALE_EACH if s.size > 1 and s.max() >= EACH_STEP_FROM * s.min() else SCALE_SHARED


def scale_note(steps, scales) -> str:
    """"max |value| 0.21 (step 0) … 31 (step 200)" for the title of the per-step view."""
    ok = np.flatnonzero(np.isfinite(scales))
    if not ok.size:
        return ""
    lo, hi = ok[np.argmin(scales[ok])], ok[np.argmax(scales[ok])]
    if lo == hi:
        return f"max |value| {scales[lo]:.3g}"
    first, last = sorted((lo, hi))     # no-break spaces: a wrapped title keeps "(step 200)" whole
    return (f"max |value| {scales[first]:.3g} (step\u00a0{int(steps[first])}) … "
            f"{scales[last]:.3g} (step\u00a0{int(steps[last])})")


def title_label() -> QLabel:
    """A plot's title as a label above the canvas: pyqtgraph makes a plot as wide as its own
    title, and a long layer name pushed the snapshot plot and its colour bar out of the panel.
    This one is cut to the width it gets (the name is shortened first, so it mostly fits)."""
    label = shrinkable(QLabel(""))
    label.setTextFormat(Qt.PlainText)      # a layer name is text, not HTML
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)                # the per-step view's scale note takes a second line, not cut
    return label


def set_title(label: QLabel, text: str, color: str | None = None) -> None:
    color = color or theme.text_color()
    label.setText(text)
    label.setStyleSheet(f"color: {color}; font-size: 9pt;")


class DistributionsPanel(LazyPanel):
    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.entry = None
        self.hist_image_data = np.empty((0, 0))   # [bins, records] as shown (log1p counts)
        self.snap_steps = np.empty(0, np.int64)
        self.snap_data = np.empty((0, 0, 0))
        self._hist_shown = None                   # (run, kind, layer) of the histograms on screen

        self.hist_layer = QComboBox()
        self.hist_kind = QComboBox()
        self.hist_kind.addItems(["weight", "grad"])
        self.hist_scale = QComboBox()
        self.hist_scale.addItems([SCALE_SHARED, SCALE_EACH])
        self.hist_scale.setToolTip("one value axis for every step, or each step's histogram on its own range "
                                   "(value ÷ that step's max |value|): an early, narrow distribution stays readable "
                                   "beside weights that grew 100x")
        self.hist_scale.setMinimumWidth(90)     # full width when there is room; a narrow window elides
                                                # it (its full width kept an 800 px window from fitting)
        self._scale_chosen = False      # until the user picks one, each layer opens with default_scale
        self._hist_read = None          # (steps, counts-shared image, lo, hi, per-step image, scales)
        self.snap_layer = QComboBox()
        self.snap_slider = QSlider(Qt.Horizontal)
        self.snap_label = QLabel("")
        self.snap_label.setMinimumWidth(70)
        # Two rows: on one, the panel (and so the window) could not be narrower than 935 px.
        top = QVBoxLayout()
        hist_row, snap_row = QHBoxLayout(), QHBoxLayout()
        top.addLayout(hist_row)
        top.addLayout(snap_row)
        self.run_label = run_badge()
        hist_row.addWidget(self.run_label)
        hist_row.addSpacing(8)
        hist_row.addWidget(QLabel("histograms of"))
        hist_row.addWidget(self.hist_kind)
        hist_row.addWidget(self.hist_layer, 1)
        hist_row.addWidget(self.hist_scale)
        snap_row.addWidget(QLabel("weight snapshot of"))
        snap_row.addWidget(self.snap_layer, 1)
        snap_row.addWidget(self.snap_slider)    # the layer names get the spare width, not the slider
        self.snap_slider.setMaximumWidth(160)
        self.snap_slider.setMinimumWidth(50)    # narrow windows squeezed it to a nub
        for combo in (self.hist_layer, self.snap_layer):   # a long layer name must not set the width,
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)   # nor hide a short one
            combo.setMinimumContentsLength(6)
        snap_row.addWidget(self.snap_label)
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.hist_plot = self.canvas.addPlot(row=0, col=0, axisItems={"bottom": StepAxis("bottom")})
        self.hist_plot.setLabel("bottom", "step")
        self.hist_plot.setLabel("left", "value")
        self.hist_plot.setMenuEnabled(False)
        self.hist_image, self.hist_bar = image_with_colorbar(self.canvas, self.hist_plot, 1, "inferno", "log(1 + count)")
        self.snap_plot = self.canvas.addPlot(row=0, col=2)
        self.snap_plot.invertY(True)
        # Not aspect-locked: square cells left wide empty margins beside a square matrix in a
        # wide plot (x -12..45 for 32 columns; trial14 L8); the image fills the plot instead.
        self.snap_plot.setMenuEnabled(False)
        self.snap_plot.setLabel("bottom", "column (block-averaged)")
        self.snap_plot.setLabel("left", "row")
        self.snap_image, self.snap_bar = image_with_colorbar(self.canvas, self.snap_plot, 3, "CET-D1", "weight")
        self.message = message_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.hist_title, self.snap_title = title_label(), title_label()
        titles = QHBoxLayout()
        titles.addWidget(self.hist_title, 3)
        titles.addWidget(self.snap_title, 2)
        lay.addLayout(top)
        lay.addWidget(self.message)
        lay.addLayout(titles)
        lay.addWidget(self.canvas, 1)

        self.hist_layer.currentIndexChanged.connect(lambda _: self.show_histograms())
        self.hist_kind.currentIndexChanged.connect(lambda _: self.show_histograms())
        self.hist_scale.activated.connect(self._scale_picked)     # the user's pick, not ours
        self.snap_layer.currentIndexChanged.connect(lambda _: self.load_snapshots())
        self.snap_slider.valueChanged.connect(self.show_snapshot)
        self.follow_current_run(runs)
        view.selectedLayersChanged.connect(self._follow_selection)
        self.load(runs.current)

    def _load(self, entry) -> None:
        show_run(self.run_label, entry)
        if entry is None:
            self._release()
            self._show_layers(None, [], [])
            return
        if self.entry is None or self.entry.run is not entry.run:
            self._release()
            self.say_reading("the distributions", entry)

        def read_layers():
            run = entry.run
            return (run.histograms("weight", 0, 0).layers if run.record_count(vocab.HISTS) else [],
                    run.snapshots(0, 0).layers if run.record_count(vocab.SNAPS) else [])

        self.read("layers", entry, read_layers, lambda got: self._show_layers(entry, *got), "distributions")

    def _show_layers(self, entry, hist_layers, snap_layers) -> None:
        new_run = self.entry is not entry
        self.entry = entry
        for combo, names in ((self.hist_layer, hist_layers), (self.snap_layer, snap_layers)):
            names = list(names)
            keep = combo.currentText()
            # a run shown anew opens at the layers selected elsewhere (a heatmap click, a finding)
            hit = selected_index(names, self.view.selected_layers) if new_run else None
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if hit is not None:
                combo.setCurrentIndex(hit)
            elif keep in names:
                combo.setCurrentIndex(names.index(keep))
            combo.blockSignals(False)
        missing = [w for w, n in (("histograms", hist_layers), ("weight snapshots", snap_layers)) if not n]
        text = f"this run has no {' or '.join(missing)}" if missing and entry else ""
        if entry is None:
            text = "no run selected"
        elif len(missing) == 2:   # nothing to draw: explain instead of showing two empty plots
            text += (" (none recorded yet, or only scalars were logged: rec.watch(model, optimizer) "
                     "records them every hist_every / snapshot_every steps)")
        self.say(text)
        self._show_canvas(entry is not None and len(missing) < 2)
        self.show_histograms()
        self.load_snapshots()

    def say(self, text: str, error: bool = False) -> None:
        super().say(text, error)
        if error or text.startswith("reading"):
            self._show_canvas(False)

    def _show_canvas(self, on: bool) -> None:
        for w in (self.canvas, self.hist_title, self.snap_title):
            w.setVisible(on)

    def _release(self) -> None:
        self.entry = None
        self._hist_shown = None
        self._hist_read = None
        self.hist_image.clear()
        self.snap_image.clear()
        self.hist_title.setText("")
        self.snap_title.setText("")
        self.hist_image_data = np.empty((0, 0))
        self.snap_steps, self.snap_data = np.empty(0, np.int64), np.empty((0, 0, 0))

    def _follow_selection(self, layers) -> None:
        for combo in (self.hist_layer, self.snap_layer):
            hit = selected_index([combo.itemText(i) for i in range(combo.count())], layers)
            if hit is not None:
                combo.setCurrentIndex(hit)

    def show_histograms(self) -> None:
        i = self.hist_layer.currentIndex()
        entry = self.entry
        if entry is None or i < 0:
            self.hist_image.clear()
            self.hist_image_data = np.empty((0, 0))
            return
        kind = self.hist_kind.currentText()
        shown = (entry.run, kind, i)
        if self._hist_shown != shown:     # another layer: no stale image while it is read
            self._hist_read = None
            self.hist_image.clear()
            self.hist_image_data = np.empty((0, 0))
            set_title(self.hist_title, f"reading {kind}s of {layer_labels([shown_name(self.hist_layer.currentText())], TITLE_NAME)[0]}…",
                      theme.muted_color())

        def read_histograms():
            steps, counts, ranges = histogram_series(entry.run, kind, i)
            if not len(steps):
                return steps, None
            return steps, (*rebin_histograms(counts, ranges, HIST_DISPLAY_BINS),
                           *rebin_each_record(counts, ranges, HIST_DISPLAY_BINS))

        self.read("histograms", entry, read_histograms,
                  lambda got: self.entry is entry and self._draw_histograms(shown, *got), "histograms")

    def _scale_picked(self, _index) -> None:
        self._scale_chosen = True
        if self._hist_read is not None:
            self._draw_histograms(self._hist_shown, *self._hist_read)

    def _draw_histograms(self, shown, steps, rebinned) -> None:
        self._hist_shown = shown
        self._hist_read = (steps, rebinned)
        kind = shown[1]
        if rebinned is None:
            self.hist_image.clear()
            return
        shared, lo, hi, each, scales = rebinned
        if not self._scale_chosen:
            self.hist_scale.setCurrentText(default_scale(scales))
        per_step = self.hist_scale.currentText() == SCALE_EACH
        img, lo, hi = (each, -1.0, 1.0) if per_step else (shared, lo, hi)
        self.hist_image_data = np.log1p(img).T        # rows = value bins (y), columns = records (x)
        status = self.entry.status
        end = max(status.last_step if status is not None else -1, int(steps[-1])) + 1   # past the last step
        shown_columns = self.hist_image_data[:, record_columns(steps, end)]
        self.hist_image.setImage(np.ascontiguousarray(shown_columns, dtype=np.float32), autoLevels=False)
        self.hist_bar.setLevels(finite_levels(self.hist_image_data))
        self.hist_image.setRect(QRectF(float(steps[0]), lo, float(end - steps[0]), hi - lo))
        self.hist_plot.setLabel("left", "value ÷ max |value|" if per_step else "value")
        name = layer_labels([shown_name(self.hist_layer.currentText())], TITLE_NAME)[0]
        note = scale_note(steps, scales) if per_step else ""
        set_title(self.hist_title, f"{kind}s of {name}" + (f"\n{note}" if note else ""))
        self.hist_plot.autoRange(padding=0)    # no empty band around the image

    def load_snapshots(self) -> None:
        i = self.snap_layer.currentIndex()
        entry = self.entry
        if entry is None or i < 0:
            self.snap_steps, self.snap_data = np.empty(0, np.int64), np.empty((0, 0, 0))
            self.snap_image.clear()
            self.snap_slider.setRange(0, 0)
            self.snap_label.setText("")
            return
        self.read("snapshots", entry, lambda: snapshot_series(entry.run, i),
                  lambda got: self.entry is entry and self._show_snapshots(*got), "weight snapshots")

    def _show_snapshots(self, steps, data) -> None:
        self.snap_steps, self.snap_data = steps, data
        # One symmetric colour scale for all steps of this matrix: growth stays visible.
        self.snap_bar.setLevels(finite_levels(self.snap_data, symmetric=True))
        self.snap_slider.blockSignals(True)
        self.snap_slider.setRange(0, max(0, len(self.snap_steps) - 1))
        self.snap_slider.setValue(max(0, len(self.snap_steps) - 1))
        self.snap_slider.blockSignals(False)
        self.show_snapshot(self.snap_slider.value())

    def show_snapshot(self, index: int) -> None:
        if len(self.snap_steps) == 0:
            self.snap_image.clear()
            return
        index = int(np.clip(index, 0, len(self.snap_steps) - 1))
        m = self.snap_data[index]
        rows = int(np.isfinite(m).any(axis=1).sum()) or m.shape[0]
        cols = int(np.isfinite(m).any(axis=0).sum()) or m.shape[1]
        self.snap_image.setImage(np.ascontiguousarray(m[:rows, :cols], dtype=np.float32), autoLevels=False)
        self.snap_image.setRect(QRectF(0, 0, cols, rows))
        self.snap_plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0)
        self.snap_label.setText(f"step {int(self.snap_steps[index])}")
        set_title(self.snap_title, f"{layer_labels([shown_name(self.snap_layer.currentText())], TITLE_NAME)[0]} at step "
                                  f"{int(self.snap_steps[index])}")
