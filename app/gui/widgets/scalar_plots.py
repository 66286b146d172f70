"""Scalar plots: one plot per selected metric, x axes linked, every open run overlaid.

Each curve (widgets/curve.py) holds a bounded min/max envelope of its series, fed with the
live rows on a background reader, and reads a zoomed-in range back from the file: a one-step
spike stays visible at every zoom, and memory follows what is shown, not the run's length.
The EMA runs over every point as it arrives and is drawn over the faint raw curve. One
smoothing setting means one window in *steps* for every curve of the panel: the densest curve
(smallest mean step gap, over every plot and run shown) gets the slider's per-point weight w,
a curve logged g times less often w ** g (g a power of 2; see lod.step_weight), so a validation
loss logged every 500 steps beside a training loss logged every step is drawn as it is, not an
average lagging thousands of steps behind it.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSlider, QVBoxLayout,
    QWidget,
)

from ...run_table import better
from ..model import X_MODES
from ..plain_text import rich, shown, tip
from ..run_io import ReaderBusy
from .curve import BUILD_BLOCK_ROWS, SHORT_SERIES, Curve, build_envelopes
from .flat_view import OffScaleViewBox
from .parts import LogFitAxis, RelativeTimeAxis, StepAxis, WallTimeAxis, any_width_title, elide, shrinkable
from .rank_band import RankBands
from .. import theme
from ...vocab import META_ROLES, is_sys, loss_roles

# The time axes' ticks carry their units (13:05:17, "0.5 s", "1:30"): no "(s) (x0.001)" title.
X_LABELS = {"step": "step", "wall": "wall time (local)", "relative": "time since start"}
HIGHLIGHT_BRUSH = (255, 200, 0, 60)
HIGHLIGHT_EDGE = (230, 170, 0, 200)   # the span's ends: amber, apart from the NaN bands' red
MARK_COLOR = (200, 110, 0, 220)      # the evidence's steps inside the highlight: a darker amber
MARK_GROUP_BRUSH = (200, 110, 0, 45)  # marks merged into one group (see merge_marks)
MAX_MARK_LINES = 8                     # at most this many marks (lines or groups) per plot
MARK_HEX = "%02X%02X%02X" % MARK_COLOR[:3]
MARK_TIP_STEPS = 12                    # steps listed in a merged group's tooltip
TRIM_AFTER_ROWS = 1_000_000   # rows read (~30 MB of transient arrays) before freed memory is trimmed
LEFT_AXIS_WIDTH = 58
# Below this a plot's y labels overlap (measured at 9 pt: 50 px showed "0.8 0.6 0.4" on top of
# each other); a short window scrolls the plot column instead of squeezing it.
MIN_PLOT_HEIGHT = 90
X_AXIS_HEIGHT = 45          # the bottom plot's step labels and axis title


NOTE_COLOR = "#C62828"
READOUT_NAME_CHARS = 24    # a run's name in the crosshair readout (the run list has the whole)
READOUT_LINES = 2          # the readout's fixed height, in lines: it never pushes the plots down
READOUT_RUNS = 6           # runs listed in it at one step, best first; "… N more" for the rest
ENDED_FRACTION = 0.01      # the cursor this far (of the x extent) past a curve's end: it has ended


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


def plot_note(counts, log_y: bool) -> str:
    """Why a plot shows (part of) nothing: all values NaN/Inf, or <= 0 on a log axis.

    ``counts``: ``(points, finite values, finite values <= 0)`` of each curve in the plot
    (kept per curve, so 50 runs do not rescan every curve whenever one more arrives)."""
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


def off_scale_note(vb, most: int = 2) -> str:
    """The runs a plot's y range leaves out (flat_view.off_scale_runs) and how far they go."""
    off = getattr(vb, "off_scale", None)
    if not off:
        return ""
    names = [f"{name} to {value:.3g}" for name, value in list(off.items())[:most]]
    more = f" +{len(off) - most} more" if len(off) > most else ""
    return f"off scale (clipped): {', '.join(names)}{more}"


def out_of_view_note(spans, view, to_step) -> str:
    """Why a zoomed plot is empty although it has data: every line lies left or right of the
    x range ``view`` (a finding at step 0 showed val/acc, logged from step 63, as bare axes).
    ``spans``: each curve's (first, last) x; ``to_step``: x to step, for the text."""
    spans = [sp for sp in spans if sp is not None]
    if view is None or not spans:
        return ""
    x0, x1 = view
    if any(a <= x1 and b >= x0 for a, b in spans):
        return ""
    after = [a for a, _ in spans if a > x1]
    if after:
        return f"no points in view: they start at step {to_step(min(after)):.0f}"
    return f"no points in view: they end at step {to_step(max(b for _, b in spans)):.0f}"


def merge_marks(marks, most: int) -> list[list]:
    """``marks`` ((x, Mark) pairs) as at most ``most`` groups of neighbours, in x order: while
    there are too many, the two groups closest together (by the gap between them) become one."""
    marks = sorted(marks, key=lambda p: p[0])
    groups = [[p] for p in marks]
    while len(groups) > max(1, most):
        gaps = [groups[i + 1][0][0] - groups[i][-1][0] for i in range(len(groups) - 1)]
        i = int(np.argmin(gaps))
        groups[i:i + 2] = [groups[i] + groups[i + 1]]
    return groups


def _step_text(step: float) -> str:
    return str(int(step)) if float(step).is_integer() else f"{step:g}"


def mark_tip(marks) -> str:
    """The tooltip of one mark or of a merged group: what it marks, then the evidence's words."""
    first = marks[0]
    if len(marks) == 1:
        head = first.label
    else:
        steps = sorted({m.step for m in marks})
        listed = ", ".join(_step_text(s) for s in steps[:MARK_TIP_STEPS])
        more = f" … (+{len(steps) - MARK_TIP_STEPS})" if len(steps) > MARK_TIP_STEPS else ""
        head = f"{first.label.rsplit(' at step ', 1)[0]} at {len(steps)} steps: {listed}{more}"
    details = list(dict.fromkeys(m.detail for m in marks if m.detail))
    return tip("\n".join([head, *details[:3]]))


def mark_legend(marks) -> str:
    """A plot title's note on its marks: "┆ loss spikes: steps 40, 49" (rich text, escaped)."""
    steps = sorted({m.step for m in marks})
    what = marks[0].label.rsplit(" at step ", 1)[0]
    listed = ", ".join(_step_text(s) for s in steps[:4]) + (f" … ({len(steps)} steps)" if len(steps) > 4 else "")
    word = "step" if len(steps) == 1 else "steps"
    return f"<span style='color:#{MARK_HEX}'>┆ {html.escape(what)}: {word} {listed}</span>"


def take_out_of_grid(layout: pg.GraphicsLayout, item) -> None:
    """Free ``item``'s cell in ``layout`` but keep it on the scene with its data (pyqtgraph's
    removeItem takes it off the scene and re-adding lays the whole grid out: shifting 100
    plots up one row that way took a second)."""
    for r, c in layout.items.pop(item):
        del layout.rows[r][c]
    layout.layout.removeItem(item)


def put_in_grid(layout: pg.GraphicsLayout, item, row: int) -> None:
    """Put ``item``, taken out by take_out_of_grid, back in column 0 of ``row``."""
    layout.rows.setdefault(row, {})[0] = item
    layout.items[item] = [(row, 0)]
    layout.layout.addItem(item, row, 0)


def set_title(plot, title: str) -> None:
    """``plot``'s title, which never sets the plot's least width: a title longer than the plot
    runs into the margin beside it instead (its least width kept the plots from giving up the
    room that lines them up with the layer heatmap; see step_align)."""
    any_width_title(plot)
    plot.setTitle(title, size="9pt", color=theme.text_color())


class ScalarPlotPanel(QWidget):
    # (first step, last step) the plots show, on every change (auto-ranged too): the layer
    # heatmap follows it while nobody zoomed, so one step is one x across the Overview (M2)
    shownStepsChanged = Signal(object)

    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        # One plot per panel: a metric, or the training and validation losses together (see
        # loss_groups); a panel is keyed by its lead metric, the first of its members.
        self._panels: dict[str, pg.PlotItem] = {}      # lead metric -> plot, in row order
        self._members: dict[str, list[str]] = {}       # lead metric -> the metrics it plots
        self._lead: dict[str, str] = {}                # metric -> lead metric of its panel
        self._roles: dict[str, tuple] = {}             # run key -> (train loss, val loss) names
        self.extents: dict[str, XExtent] = {}     # per plot: the union x range (see XExtent)
        self.curves: dict[tuple[str, str], Curve] = {}
        self._regions: dict[str, pg.LinearRegionItem] = {}   # per plot: the highlighted steps
        self._vlines: dict[str, pg.InfiniteLine] = {}         # per plot: the crosshair
        self._marks: dict[str, list] = {}                     # per plot: lines at the evidence's steps
        self._titles: dict[str, str] = {}                     # per plot: the title shown
        self._first = None         # the top plot: the others' x axes follow it
        self._xmap = None          # (steps, x) of the reference run, for step <-> x conversion
        self._xmap_key, self._xmap_len = None, 0
        self._feeding: set = set()     # run keys with a read of new rows in flight
        self._feed_again: set = set()  # ... and another one wanted after it
        self._detailing: set = set()   # curves with a zoomed-in read in flight
        self._rows_read = 0            # scalar rows read since memory was last trimmed
        self._syncing = False

        self.x_combo = QComboBox()
        self.x_combo.addItems([X_LABELS[m] for m in X_MODES])
        self.x_combo.setToolTip("x axis (X cycles)")
        self.smooth_slider = QSlider(Qt.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setMinimumWidth(60)      # a narrow window shrinks it first
        self.smooth_slider.setMaximumWidth(140)
        self.smooth_label = QLabel()
        self.log_check = QCheckBox("log y")
        self.log_check.setToolTip("logarithmic y axis (L)")
        self.combine_check = QCheckBox("train + val loss on one plot")
        self.combine_check.setToolTip("train and val loss on one plot (C): each run's training loss (solid) and "
                                      "validation loss (dashed, ○) on one axis, so the gap between them shows; "
                                      "off: each on its own plot")
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
        self.readout.setWordWrap(True)    # two runs x three metrics do not fit one line: it was cut
        self.readout.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        # A fixed height: 12 runs x 4 metrics grew it into a 12-line paragraph that pushed the
        # plots down (and their x axis out of view), jumping as the mouse moved.
        # Two lines as the rich text draws them (bold, the colour squares' font): the font's own
        # line spacing gave 32 px for ~36 px of text, cutting the second line mid-glyph.
        self.readout.setText("<br>".join(["<b>step 0</b> &#9632;&nbsp;Ag"] * READOUT_LINES))
        self.readout.setFixedHeight(max(READOUT_LINES * self.readout.fontMetrics().lineSpacing() + 4,
                                        self.readout.heightForWidth(4000) + 2))
        self.readout.setText(" ")
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.empty_label = QLabel("Open a run (File > Open, Open folder, or drop files or a folder here) "
                                 "and pick metrics on the left.")
        self.empty_label.setAlignment(Qt.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        # Beside the readout, not in the bar above: the bar's width is the window's least width.
        under = QHBoxLayout()
        under.addWidget(self.readout, 1)
        under.addWidget(self.combine_check, 0, Qt.AlignTop)
        lay.addLayout(under)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)      # fills the height when there is room
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.canvas)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.empty_label)
        self._sync_controls()

        self.x_combo.currentIndexChanged.connect(lambda i: view.set_x_mode(X_MODES[i]))
        self.smooth_slider.valueChanged.connect(lambda v: view.set_smoothing(v / 100.0))
        self.log_check.toggled.connect(view.set_log_y)
        self.combine_check.toggled.connect(view.set_combine_losses)
        view.combineLossesChanged.connect(lambda _: self.rebuild())
        self.reset_button.clicked.connect(view.reset_view)
        view.metricsChanged.connect(self._on_metrics)
        view.xModeChanged.connect(self._on_x_mode)
        view.smoothingChanged.connect(self._on_smoothing)
        view.logYChanged.connect(self._on_log_y)
        view.stepRangeChanged.connect(self._apply_step_range)
        view.highlightChanged.connect(self._apply_highlight)
        view.marksChanged.connect(self._apply_marks)
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
                          (self.log_check, lambda: self.log_check.setChecked(v.log_y)),
                          (self.combine_check, lambda: self.combine_check.setChecked(v.combine_losses))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)
        self.smooth_label.setText(f"{v.smoothing:.2f}")

    @property
    def plots(self) -> dict:
        """Metric -> its plot, in row order (the members of a combined panel share one plot)."""
        return {m: plot for lead, plot in self._panels.items() for m in self._members[lead]}

    @property
    def regions(self) -> list:
        return [self._regions[m] for m in self._panels]

    @property
    def vlines(self) -> list:
        return [self._vlines[m] for m in self._panels]

    def members(self, metric: str) -> list[str]:
        """The metrics drawn on ``metric``'s plot (itself alone, or the losses together)."""
        lead = self._lead.get(metric)
        return list(self._members[lead]) if lead is not None else []

    # ------------------------------------------------------------ the combined loss plot
    def _run_roles(self, entry) -> tuple:
        """(training loss, validation loss) names of ``entry`` (None where it has no such role),
        as the advisor and the report name them; read from the names it holds, not the file."""
        names = tuple(entry.names)
        got = self._roles.get(entry.key)
        if got is None or got[0] != names:
            roles = loss_roles([n for n in names if not is_sys(n)], (entry.run.meta or {}).get(META_ROLES))
            got = self._roles[entry.key] = (names, (roles.get("train"), roles.get("val")))
        return got[1]

    def loss_groups(self, metrics) -> list[list[str]]:
        """The panels for ``metrics`` in order: each metric alone, except a training loss and a
        validation loss of the open runs (a run with both), which share one plot at the first
        one's place (training first, the view's "combine losses" on)."""
        metrics = list(metrics)
        if not self.view.combine_losses:
            return [[m] for m in metrics]
        train, val = set(), set()
        for entry in self.runs.runs():
            t, v = self._run_roles(entry)
            if t is not None and v is not None:
                train.add(t)
                val.add(v)
        losses = [m for m in metrics if m in train or m in val]
        if not (any(m in train for m in losses) and any(m in val and m not in train for m in losses)):
            return [[m] for m in metrics]
        losses.sort(key=lambda m: m not in train)     # training first: solid under dashed
        out, placed = [], False
        for m in metrics:
            if m not in losses:
                out.append([m])
            elif not placed:
                out.append(losses)
                placed = True
        return out

    def _is_val_curve(self, entry, metric: str) -> bool:
        """Drawn dashed with markers: ``entry``'s validation loss on a combined plot."""
        return len(self.members(metric)) > 1 and self._run_roles(entry)[1] == metric

    def _groups_now(self) -> list[list[str]]:
        return [list(self._members[lead]) for lead in self._panels]

    def _regroup_if_needed(self) -> bool:
        """Runs opened or closed may make or unmake the combined loss plot: lay out anew."""
        if self.loss_groups(self.view.metrics) != self._groups_now():
            self.rebuild()
            return True
        return False

    def rebuild(self, *_):
        """Recreate every plot for the selected metrics (and curves for every open run)."""
        self._sync_controls()
        # The data of curves that stay is kept: no re-read.
        kept = dict(self.curves)
        self.canvas.clear()
        for store in (self._panels, self._members, self._lead, self.extents, self.curves, self._regions,
                      self._vlines, self._marks, self._titles):
            store.clear()
        self._first = None
        self._reset_xmap()
        self._add_plots(self.loss_groups(self.view.metrics), kept)
        self._refresh_step_smoothing()

    def _on_metrics(self, names) -> None:
        """One metric ticked or unticked: add or drop its plot only; the others keep their
        items, zoom and data (a rebuild of 100 plots took 5 s per click)."""
        names = list(names)
        groups = self.loss_groups(names)
        now = self._groups_now()
        old = [g for g in now if g in groups]
        if old != [g for g in groups if g in now] or any(
                len(g) > 1 for g in groups + now if (g in groups) != (g in now)):
            self.rebuild()     # reordered, or the losses joined or left their shared plot: lay out anew
            return
        gone = [g[0] for g in now if g not in groups]
        for lead in gone:
            self._drop_plot(lead)
        if gone:
            self._reset_xmap()
            for curve in self.curves.values():
                self._maybe_xmap(curve)
        self._add_plots([g for g in groups if g not in now])
        self.bands._drop_bands_of_gone_plots()
        if gone:
            self._refresh_step_smoothing()   # the densest curve may have gone with them

    def _add_plots(self, groups, kept=None) -> None:
        """Plots for ``groups`` (lists of metrics, see loss_groups)."""
        # Plots and links first, data second, auto range last: adding data to linked plots
        # one by one would re-range (and re-downsample) every earlier plot each time.
        new = {group[0]: self._new_plot(group) for group in groups}
        self._lay_out()
        metrics = [m for group in groups for m in group]
        for entry in self.runs.runs():
            self._add_curves(entry, metrics, kept)
        self._update_extents()
        for plot in new.values():
            plot.enableAutoRange(y=True, x=self.view.step_range is None)
            plot.getViewBox().sigXRangeChanged.connect(lambda vb, rng, plot=plot: self._feed_view(plot))
            self._feed_view(plot)
        self._apply_highlight(self.view.highlight)
        self._apply_marks(self.view.marks)
        self._apply_step_range(self.view.step_range)

    def _new_plot(self, group) -> pg.PlotItem:
        """A plot for the metrics of ``group`` (one, or the losses) with its extent, crosshair
        line and highlight (not laid out)."""
        metric = group[0]
        view = OffScaleViewBox()
        # titles are laid out again after the range update that changed them, not inside it
        view.offScaleChanged.connect(self._update_titles, Qt.QueuedConnection)
        plot = pg.PlotItem(viewBox=view, axisItems={"bottom": self._x_axis(), "left": LogFitAxis("left")})
        plot.disableAutoRange()
        set_title(plot, self._title_of(group))   # a name is text, not HTML
        # No grid: alpha-blended grid lines across the plot cost ~30 ms per redraw offscreen.
        plot.setLogMode(False, self.view.log_y)
        plot.setMenuEnabled(False)
        plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)   # stacked plots line up pixel for pixel
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        self._panels[metric] = plot
        self._members[metric] = list(group)
        for m in group:
            self._lead[m] = metric
        extent = self.extents[metric] = XExtent()
        plot.addItem(extent)
        vline = self._vlines[metric] = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen(theme.muted_color(), width=1, style=Qt.DashLine))
        vline.setVisible(False)
        plot.addItem(vline, ignoreBounds=True)
        # Its ends drawn too: over a NaN band the span still shows where it starts and stops.
        region = self._regions[metric] = pg.LinearRegionItem(
            movable=False, brush=pg.mkBrush(HIGHLIGHT_BRUSH), pen=pg.mkPen(HIGHLIGHT_EDGE, width=2))
        region.setZValue(-10)
        region.setVisible(False)
        plot.addItem(region, ignoreBounds=True)
        return plot

    def _x_axis(self) -> pg.AxisItem:
        mode = self.view.x_mode
        return (WallTimeAxis() if mode == "wall" else StepAxis("bottom") if mode == "step"
                else RelativeTimeAxis("bottom"))

    def _drop_plot(self, metric: str) -> None:
        """Take the plot led by ``metric`` and its curves away."""
        for m in self._members.pop(metric):
            self._lead.pop(m, None)
            for key in [k for k in self.curves if k[0] == m]:
                self.curves.pop(key).remove()
        plot = self._panels.pop(metric)
        for store in (self.extents, self._regions, self._vlines, self._marks, self._titles):
            store.pop(metric, None)
        if plot is self._first:
            self._first = None
        self.canvas.ci.removeItem(plot)

    def _lay_out(self) -> None:
        """Put the plots in rows in metric order (only the ones that moved are touched), link
        their x axes to the top one and show the step labels under the bottom one."""
        ci = self.canvas.ci
        ordered = [(m, self._panels[m]) for m in self.view.metrics if m in self._panels]
        self._panels.clear()
        self._panels.update(ordered)       # dict order is row order (a metric put first goes first)
        order = list(self._panels.values())
        moved = [(row, p) for row, p in enumerate(order) if ci.items.get(p) != [(row, 0)]]
        for _, plot in moved:       # out of their cells first: a row may be taken by another
            if plot in ci.items:
                take_out_of_grid(ci, plot)
        for row, plot in moved:
            if plot in ci.itemBorders:
                put_in_grid(ci, plot, row)
            else:
                ci.addItem(plot, row=row, col=0)
        self._link_x(order[0] if order else None)
        for row, plot in enumerate(order):
            self._style_bottom(plot, row == len(order) - 1)
        n = len(order)
        self.canvas.setMinimumHeight(MIN_PLOT_HEIGHT * n + X_AXIS_HEIGHT if n else 0)
        self._show_hint()

    def _link_x(self, first) -> None:
        """Every plot's x axis follows ``first``, whose range is the model's step range."""
        if first is self._first:
            for plot in self._panels.values():
                if plot is not first and plot.getViewBox().linkedView(0) is not first.getViewBox():
                    plot.setXLink(first)
            return
        if self._first is not None:
            self._first.getViewBox().sigXRangeChanged.disconnect(self._on_user_range)
            self._first.getViewBox().sigXRangeChanged.disconnect(self._on_shown_range)
        self._first = first
        if first is None:
            return
        first.setXLink(None)
        for plot in self._panels.values():
            if plot is not first:
                plot.setXLink(first)
        first.getViewBox().sigXRangeChanged.connect(self._on_user_range)
        first.getViewBox().sigXRangeChanged.connect(self._on_shown_range)
        self._on_shown_range(first.getViewBox(), first.getViewBox().viewRange()[0])

    def step_view(self):
        """The top plot's ViewBox while plots are shown (the x axes below follow it), else None."""
        return self._first.getViewBox() if self._first is not None and self.canvas.isVisible() else None

    def shown_steps(self):
        """(first, last) step of the x range the plots show, None without plots."""
        if self._first is None:
            return None
        lo, hi = self.x_to_step(np.array(self._first.getViewBox().viewRange()[0], dtype=np.float64))
        return float(lo), float(hi)

    def _on_shown_range(self, vb, rng) -> None:
        self.shownStepsChanged.emit(self.shown_steps())
        self._update_titles()

    def _outside_view(self) -> dict[str, str]:
        """Per plot whose lines all lie outside the zoomed x range, the note that says where they are."""
        view = None
        if self._first is not None and not self._first.getViewBox().autoRangeEnabled()[0]:
            view = tuple(self._first.getViewBox().viewRange()[0])
        spans: dict[str, list] = {}
        for (metric, _), curve in self.curves.items():
            lead = self._lead.get(metric)
            if lead is not None:
                spans.setdefault(lead, []).append(curve.x_span)
        to_step = (lambda x: float(self.x_to_step(np.array([x]))[0]))
        return {m: n for m, sp in spans.items() if (n := out_of_view_note(sp, view, to_step))}

    def _style_bottom(self, plot, last: bool) -> None:
        """Every plot shows its x values (only the bottom one had them: when the plots overflowed
        the scroll area, or a finding zoomed to steps 145-165, no step number was in view); the
        axis title is under the bottom plot only (the x axes are linked)."""
        axis = plot.getAxis("bottom")
        if not axis.style["showValues"]:
            axis.setStyle(showValues=True)
        if last:
            plot.setLabel("bottom", X_LABELS[self.view.x_mode])
        elif axis.label.isVisible():
            plot.showLabel("bottom", False)

    def _on_x_mode(self, *_) -> None:
        """Another x axis: swap each plot's bottom axis and redraw the held data (no new plots)."""
        self._sync_controls()
        for plot in self._panels.values():
            plot.setAxisItems({"bottom": self._x_axis()})
        for row, plot in enumerate(self._panels.values()):
            self._style_bottom(plot, row == len(self._panels) - 1)
        self._reset_xmap()
        for curve in self.curves.values():
            curve.set_axis(*self._axis_of(curve.entry))
            if not curve.rebuild:
                curve._after_data()
            self._maybe_xmap(curve)
            self.bands.add(curve.plot, curve.entry, curve.metric)   # bands are drawn in x units
        self._update_extents()
        for plot in self._panels.values():
            plot.enableAutoRange()
        self._apply_highlight(self.view.highlight)
        self._apply_marks(self.view.marks)
        self._apply_step_range(self.view.step_range)

    def _reset_xmap(self) -> None:
        self._xmap = self._xmap_key = None
        self._xmap_len = 0

    def _maybe_xmap(self, curve) -> None:
        """The longest curve maps steps to x (see step_to_x)."""
        if self._xmap_key is None or curve.n_points > self._xmap_len:
            self._set_xmap(curve)

    def _add_curves(self, entry, metrics, kept=None) -> None:
        """Curves of ``entry`` for ``metrics``; ``kept``: old curves whose data they take over."""
        names = set(entry.names)
        added = False
        for metric in metrics:
            lead = self._lead.get(metric)
            if lead is None or metric not in names or (metric, entry.key) in self.curves:
                continue
            plot = self._panels[lead]
            curve = Curve(plot, entry, metric, self.view.smoothing, dashed=self._is_val_curve(entry, metric))
            curve.set_axis(*self._axis_of(entry))
            curve._view = self._view_of(plot)
            old = (kept or {}).get((metric, entry.key))
            if old is not None:
                curve.adopt(old)
                self._maybe_xmap(curve)
            self.curves[(metric, entry.key)] = curve
            self.bands.add(plot, entry, metric)
            added = True
        if added:
            self._feed(entry)

    # ------------------------------------------------------------ reads (off the GUI thread)
    def _feed(self, entry) -> None:
        """Read what the curves of ``entry`` have not seen on a background reader: the new rows,
        or the whole series for a new curve (or new smoothing). One read per run in flight,
        another one after it when asked meanwhile."""
        if entry.key in self._feeding:
            self._feed_again.add(entry.key)
            return
        curves = self._curves_of(entry)
        if not curves or not entry.ready:
            return
        build = {c.metric: c.build_weight() for c in curves if c.rebuild}
        grow = [c for c in curves if not c.rebuild]
        start = min((c.rows_fed for c in grow), default=0)
        names = [c.metric for c in grow]
        self._feeding.add(entry.key)

        def work(run=entry.run):
            with run.locked() as r:
                r.scalar_names()            # the scalar table is read (row count, names)
                seen = r.scalar_rows_seen
                stop = min(seen, start + BUILD_BLOCK_ROWS)   # a run far ahead: in bounded steps
                got = r.scalar_rows(names, start, stop, latest=True) if names else {}
            return seen, stop, got, build_envelopes(run, build, seen) if build else {}

        self.runs.io.submit(work, lambda result, run=entry.run: self._fed(entry, run, start, names, result),
                            lambda exc: self._feed_failed(entry, exc))

    def _fed(self, entry, run, start: int, names, result) -> None:
        self._feeding.discard(entry.key)
        if entry.run is not run:      # reopened meanwhile (resumed or replaced): read it anew
            self._feed_later(entry, again=True)
            return
        seen, stop, got, built = result
        self._rows_read += (stop - start) * bool(names) + seen * bool(built)
        if self._rows_read >= TRIM_AFTER_ROWS:   # what the reads freed goes back to the system
            self._rows_read = 0
            self.runs.trim_soon()
        # The gaps of the series just read first: a sparse series read with the slider's weight
        # is thrown away at once (and read again with its own), not drawn lagging meanwhile.
        pending = self._update_step_smoothing([env.step_gap() for env in built.values() if env.finite > SHORT_SERIES])
        pending.pop(entry.key, None)     # this run's curves: the loop below asks for what they need
        for curve in self._curves_of(entry):
            if curve.metric in built:
                curve.take_built(built[curve.metric], seen)
            elif curve.metric in names:
                curve.take(start, stop, got.get(curve.metric))
            if curve.rebuild or curve.rows_fed < seen:
                self._feed_again.add(entry.key)     # added, or new smoothing, meanwhile
            self._maybe_xmap(curve)
            self._want_detail(curve)
        pending.update(self._update_step_smoothing())   # the gaps grew with the new rows
        if pending.pop(entry.key, None) is not None:
            self._feed_again.add(entry.key)
        for other in pending.values():
            self._feed_later(other, again=True)
        self._update_extents()
        self._feed_later(entry)

    def _feed_later(self, entry, again: bool = False) -> None:
        if again:
            self._feed_again.add(entry.key)
        if entry.key in self._feed_again and entry in self.runs.runs():
            self._feed_again.discard(entry.key)
            self._feed(entry)

    def _feed_failed(self, entry, exc) -> None:
        self._feeding.discard(entry.key)
        if isinstance(exc, ReaderBusy) or entry not in self.runs.runs():
            return
        self.runs.report_read_error(entry, f"{entry.path}: cannot read the plotted metrics ({exc})")

    def _want_detail(self, curve) -> None:
        """A zoomed-in view needs rows the overview does not resolve: read just those."""
        if curve in self._detailing:
            return
        request = curve.detail_request()
        if request is None:
            return
        self._detailing.add(curve)
        metric = curve.metric

        def work(run=curve.entry.run):
            with run.locked() as r:
                return r.scalar_rows([metric], request[0], request[1], latest=True).get(metric)

        def done(got, run=curve.entry.run):
            self._detailing.discard(curve)
            if self.curves.get((curve.metric, curve.entry.key)) is curve and curve.entry.run is run:
                curve.take_detail(request, got)
                self._want_detail(curve)            # the view moved on meanwhile

        self.runs.io.submit(work, done, lambda exc: self._detailing.discard(curve))

    def _add_run(self, entry) -> None:
        """A run was opened: overlay its curves on the existing plots (no rebuild, unless its
        losses make or unmake the combined loss plot)."""
        self._show_hint()
        if self._regroup_if_needed():
            return
        self._add_curves(entry, list(self._lead))
        self._update_extents()
        for curve in self._curves_of(entry):   # the others already show this view
            curve._view = self._view_of(curve.plot)

    def _remove_run(self, entry) -> None:
        """A run was closed: drop its curves and release their data."""
        for key in [k for k in self.curves if k[1] == entry.key]:
            curve = self.curves.pop(key)
            if self._panels.get(self._lead.get(key[0])) is curve.plot:
                curve.remove()
        self._roles.pop(entry.key, None)
        if self._regroup_if_needed():
            self._show_hint()
            return
        self._reset_xmap()
        for curve in self.curves.values():
            self._maybe_xmap(curve)
        self._refresh_step_smoothing()   # its curves may have been the densest
        self._show_hint()
        self._update_extents()

    def _show_hint(self) -> None:
        """The plots, or the "Open a run" hint when there is no run or no metric to plot (the
        closed runs' empty axes were left behind, squeezing the hint under them)."""
        shown = bool(self._panels) and bool(self.runs.runs())
        self.scroll.setVisible(shown)
        self.empty_label.setVisible(not shown)

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

    def _title_of(self, group) -> str:
        """A plot's title (rich text): its metric, or for the combined loss plot which line is which."""
        if len(group) == 1:
            return rich(group[0])
        vals = {self._run_roles(e)[1] for e in self.runs.runs()}
        train = [m for m in group if m not in vals]
        val = [m for m in group if m in vals]
        return (f"loss: {', '.join(rich(m) for m in train)} <b>━</b> solid, "
                f"{', '.join(rich(m) for m in val)} <b>╍○</b> dashed")

    def _update_titles(self) -> None:
        outside = self._outside_view()
        for metric, plot in self._panels.items():
            group = self._members[metric]
            counts = [c.counts for (m, _), c in self.curves.items() if m in group]
            note = plot_note(counts, self.view.log_y) if self.runs.runs() else ""
            title = self._title_of(group)
            if note:
                title += f" <span style='color:{theme.error_color()}'>— {html.escape(note)}</span>"
            elif metric in outside:     # not an error: the zoom shows steps this metric was not logged at
                title += f" <span style='color:{theme.muted_color()}'>— {html.escape(outside[metric])}</span>"
            off = off_scale_note(plot.getViewBox())
            if off:
                title += f" <span style='color:{theme.error_color()}'>— {html.escape(off)}</span>"
            marks = [m for m in self.view.marks if self._lead.get(m.series) == metric]
            if marks:
                title += " " + mark_legend(marks)
            if self._titles.get(metric) != title:   # setTitle re-lays the plot out: only on change
                self._titles[metric] = title
                set_title(plot, title)

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
            if curve.plot is plot:
                curve.show_view(*view)
                self._want_detail(curve)

    def _axis_of(self, entry) -> tuple[str, float]:
        """The envelope axis and origin of the x axis: step, wall time, or time since start."""
        mode = self.view.x_mode
        if mode == "step":
            return "s", 0.0
        return "w", (entry.start_time if mode == "relative" else 0.0)   # read at open: no file access here

    def _set_xmap(self, curve) -> None:
        steps, x = curve.step_x_pairs()
        steps = steps.astype(np.float64)
        if len(steps) > 1 and not np.all(steps[1:] >= steps[:-1]):   # e.g. a resumed run
            order = np.argsort(steps, kind="stable")
            steps, x = steps[order], x[order]
        self._xmap = (steps, np.maximum.accumulate(x) if len(x) else x)
        self._xmap_key, self._xmap_len = (curve.metric, curve.entry.key), curve.n_points

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

    # ------------------------------------------------------------ smoothing by steps
    def smoothing_reference(self, extra=()):
        """The mean step gap of the densest curve in the panel (every plot, every run), or None:
        the gap for which the slider's weight is the per-point weight. Per panel, not per run:
        two runs logged at different rates are then smoothed over the same steps, and their bold
        curves can be compared. Short series (drawn raw) do not count. ``extra``: gaps of
        series just read, before their curves take them."""
        gaps = [c.gap for c in self.curves.values() if c.gap is not None and c.seen[1] > SHORT_SERIES]
        gaps += [g for g in extra if g is not None]
        return min(gaps, default=None)

    def _update_step_smoothing(self, extra=()) -> dict:
        """Give every curve the panel's reference gap; a curve whose smoothing changes is
        rebuilt here when it holds every point, else marked for a read. Returns {run key:
        entry} of the runs with curves to read again."""
        ref = self.smoothing_reference(extra)
        pending = {}
        for curve in self.curves.values():
            if not curve.set_gap_ref(ref):
                continue
            if not curve.rebuild:
                curve._after_data()
            if curve.rebuild:
                pending[curve.entry.key] = curve.entry
        return pending

    def _refresh_step_smoothing(self) -> None:
        for entry in self._update_step_smoothing().values():
            self._feed_later(entry, again=True)

    # ------------------------------------------------------------ model -> widgets
    def _on_smoothing(self, weight: float) -> None:
        self._sync_controls()
        entries = {}
        for curve in self.curves.values():
            curve.set_weight(weight)
            if curve.rebuild:         # read the series again with the new smoothing
                entries[curve.entry.key] = curve.entry
            else:
                curve._after_data()
        for entry in entries.values():
            self._feed(entry)

    def _on_log_y(self, on: bool) -> None:
        self._sync_controls()
        for plot in self._panels.values():
            plot.setLogMode(False, on)
        self._update_titles()

    def _on_run_updated(self, entry, n_new: int) -> None:
        """Live data: read the new rows of the plotted metrics (new metrics get curves)."""
        if self._regroup_if_needed():    # its losses (new names) make or unmake the combined plot
            return
        missing = [m for m in self.view.metrics if (m, entry.key) not in self.curves]
        if missing:   # metrics this run logged for the first time just now
            self._add_curves(entry, missing)
        self._feed(entry)

    def _apply_step_range(self, rng) -> None:
        if not self._panels:
            return
        first = next(iter(self._panels.values()))
        self._syncing = True
        try:
            if rng is None:
                for p in self._panels.values():
                    p.enableAutoRange()
            else:
                x0, x1 = self.step_to_x(np.array(rng, dtype=np.float64))
                first.setXRange(float(x0), float(x1), padding=0)
                for p in self._panels.values():
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

    def marked(self, metric: str) -> list[float]:
        """x positions of the evidence marks shown on ``metric``'s plot (a merged group: its
        first step)."""
        return [item.mark_span[0] for item in self._marks.get(self._lead.get(metric), []) if item.isVisible()]

    def mark_tips(self, metric: str) -> list[str]:
        """The tooltip of each evidence mark on ``metric``'s plot: what it marks."""
        return [item.toolTip() for item in self._marks.get(self._lead.get(metric), []) if item.isVisible()]

    def _apply_marks(self, marks) -> None:
        """The focused finding's evidence steps, on the plot of the series each was seen in only
        (never on every plot), each with a tooltip saying what it marks. A plot given more than
        MAX_MARK_LINES of them (vanishing gradients named 20 steps, 25 lines across every plot)
        gets at most that many: the nearest are merged into a shaded group."""
        for lead, items in self._marks.items():
            plot = self._panels.get(lead)
            for item in items:
                if plot is not None:
                    plot.removeItem(item)
        self._marks.clear()
        by_plot: dict[str, list] = {}
        for m in marks:
            lead = self._lead.get(m.series)
            if lead is not None:
                by_plot.setdefault(lead, []).append(m)
        for lead, group in by_plot.items():
            plot = self._panels[lead]
            steps = np.array([m.step for m in group], dtype=np.float64)
            xs = self.step_to_x(steps)
            items = self._marks[lead] = []
            for members in merge_marks(list(zip(xs, group)), MAX_MARK_LINES):
                x0, x1 = float(members[0][0]), float(members[-1][0])
                text = mark_tip([m for _, m in members])
                if len(members) == 1 or x1 <= x0:
                    item = pg.InfiniteLine(pos=x0, angle=90, movable=False,
                                           pen=pg.mkPen(MARK_COLOR, width=2, style=Qt.DotLine))
                else:
                    item = pg.LinearRegionItem(values=(x0, x1), movable=False, brush=pg.mkBrush(MARK_GROUP_BRUSH),
                                               pen=pg.mkPen(MARK_COLOR, width=1, style=Qt.DotLine))
                item.mark_span = (x0, x1)
                item.setZValue(-5)
                item.setToolTip(text)
                plot.addItem(item, ignoreBounds=True)
                items.append(item)
        self._update_titles()

    # ------------------------------------------------------------ widgets -> model
    def _on_user_range(self, vb, rng) -> None:
        # Only user pan/zoom (auto range off) becomes the model's range; auto-ranging on
        # new data must not pin the view.
        if self._syncing or vb.autoRangeEnabled()[0]:
            return
        source = next((v for v in (p.getViewBox() for p in self._panels.values()) if v is not vb and v.linksBlocked), None)
        if source is not None and source.autoRangeEnabled()[0]:
            # Another plot's auto range reached this one through the x link, which turns this
            # one's auto range off on the way: not the user's range. Pinned, a plot that ranged
            # before the other runs' extents arrived held every plot at the first run's steps
            # (0-207 of four runs up to 600; which plot ranged first varied from one open to
            # the next, trial 17).
            QTimer.singleShot(0, self, self._resume_auto_x)
            return
        lo, hi = self.x_to_step(np.array(rng, dtype=np.float64))
        self._syncing = True
        try:
            self.view.set_step_range((lo, hi))
        finally:
            self._syncing = False

    def _resume_auto_x(self) -> None:
        """The top plot ranges over every run's steps again (the others follow it), unless the
        user has zoomed since."""
        if self.view.step_range is None and self._first is not None:
            self._first.getViewBox().enableAutoRange(x=True)

    def _on_mouse(self, event) -> None:
        pos = event[0]
        for lead, plot in self._panels.items():
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                point = vb.mapSceneToView(pos)
                self.show_crosshair(point.x(), self._nearest_member(lead, point.x(), point.y()))
                return

    def _nearest_member(self, lead: str, x: float, y: float) -> str:
        """The metric of the combined plot whose curve passes nearest the mouse (its own for a
        plot of one metric): the readout lists the runs' values of that one."""
        group = self._members[lead]
        if len(group) == 1:
            return lead
        best, best_d = lead, np.inf
        for (m, _), curve in self.curves.items():
            if m in group:
                hit = curve.value_at(x)
                if hit is not None and np.isfinite(hit[1]):
                    v = np.log10(hit[1]) if self.view.log_y and hit[1] > 0 else hit[1]
                    if abs(v - y) < best_d:
                        best, best_d = m, abs(v - y)
        return best

    def show_crosshair(self, x: float, metric: str | None = None) -> str:
        """Move the crosshair to ``x`` (plot units) and show exact values; returns the text.

        One run: every plotted metric's value. Several runs: the values of ``metric`` (the plot
        under the mouse; the top plot without one), sorted best first (by the metric's name:
        lowest loss, highest accuracy; else highest first), at most READOUT_RUNS of them and
        "… N more"; the whole list is the readout's tooltip. The readout keeps its height."""
        for line in self.vlines:
            line.setPos(x)
            line.setVisible(True)
        n_runs = len({key for _, key in self.curves})
        several = n_runs > 1
        plots = self.plots
        if several:
            shown_metrics = [metric if metric in plots else next(iter(plots), None)]
        else:
            shown_metrics = list(plots)
        step_txt = None
        muted = theme.muted_color()
        parts, tips = [], []
        for name in shown_metrics:
            rows = []     # (rank key, html, plain text)
            for (m, key), curve in self.curves.items():
                if m != name:
                    continue
                hit = curve.value_at(x)
                if hit is None:
                    continue
                step, raw, smooth = hit
                ended = self._ended_before(curve, x)
                if ended:     # far past its last step: not a current value
                    txt = f"<span style='color:{muted}'>ended at step {step} ({raw:.4g})</span>"
                    plain = f"ended at step {step} ({raw:.4g})"
                else:
                    step_txt = step_txt or f"step {step}"
                    txt = plain = f"{raw:.6g}"
                    if f"step {step}" != step_txt:   # a sparser metric's nearest point is elsewhere: say where
                        txt += f" <span style='color:{muted}'>@ step {step}</span>"
                        plain += f" @ step {step}"
                    if curve.env.weight > 0 and smooth is not None:   # the weight it is drawn with
                        txt += f" <span style='color:{muted}'>(ema&nbsp;{smooth:.4g})</span>"
                        plain += f" (ema {smooth:.4g})"
                label = f"{rich(elide(shown(curve.entry.name), READOUT_NAME_CHARS))} " if several else ""
                rows.append((self._rank_key(name, raw, ended),
                             f"<span style='color:{curve.entry.color}'>&#9632;</span>&nbsp;{label}{txt}",
                             f"{shown(curve.entry.name)}: {plain}"))
            if not rows:
                continue
            if several:
                rows.sort(key=lambda r: r[0])
                order = {"min": " (lowest first)", "max": " (highest first)"}.get(better(name), " (highest first)")
                parts.append((f"<b>{rich(name)}</b><span style='color:{muted}'>{order}</span> ",
                              [html_ for _, html_, _ in rows]))
                tips.append(f"{name}{order}:\n" + "\n".join(f"  {p}" for _, _, p in rows))
            else:
                parts.append((f"<b>{rich(name)}</b> ", [h for _, h, _ in rows]))
                tips.append(f"{name}: " + ", ".join(p.split(": ", 1)[-1] for _, _, p in rows))
        head = f"<b>{step_txt}</b> &nbsp; " if step_txt else ""
        self._fit_readout(head, parts, READOUT_RUNS if several else None)
        self.readout.setToolTip(tip("\n".join(([step_txt] if step_txt else []) + tips)) if tips else "")
        return self.readout.text()

    def _fit_readout(self, head: str, parts, most_runs) -> None:
        """Show ``head`` and ``parts`` ((title, values) per metric) in the readout's fixed
        READOUT_LINES: runs (``most_runs`` at most), or else the last metrics, are left out and
        counted ("… 7 more") until the text fits (a third wrapped line was cut off)."""
        muted = theme.muted_color()
        width = max(100, self.readout.width())

        def text(runs, metrics):
            shown_parts = []
            for title, vals in parts[:metrics]:
                k = len(vals) if runs is None else runs
                more = [f"<span style='color:{muted}'>… {len(vals) - k} more</span>"] if len(vals) > k else []
                shown_parts.append(title + ", ".join(vals[:k] + more))
            if metrics < len(parts):
                shown_parts.append(f"<span style='color:{muted}'>… {len(parts) - metrics} more metrics</span>")
            return (head + " &nbsp;| ".join(shown_parts)) or " "

        tries = ([(k, len(parts)) for k in range(most_runs, 0, -1)] if most_runs
                 else [(None, m) for m in range(len(parts), 0, -1)])
        for runs, metrics in tries:
            self.readout.setText(text(runs, metrics))
            if self.readout.heightForWidth(width) <= self.readout.height():
                return

    @staticmethod
    def _rank_key(metric: str, value: float, ended: bool) -> tuple:
        """Sort key of a run's value in the readout: current finite values best first, then the
        runs that ended, then NaN/Inf."""
        finite = bool(np.isfinite(value))
        v = float(value) if finite else 0.0
        return (ended, not finite, v if better(metric) == "min" else -v)

    def _ended_before(self, curve, x: float) -> bool:
        """``x`` lies well past ``curve``'s last point (a run that stopped at step 599 read as
        current at step 123400): more than ENDED_FRACTION of all curves' x extent."""
        if curve.x_span is None:
            return False
        lo, hi = np.inf, -np.inf
        for c in self.curves.values():
            if c.x_span is not None:
                lo, hi = min(lo, c.x_span[0]), max(hi, c.x_span[1])
        return x - curve.x_span[1] > ENDED_FRACTION * max(hi - lo, 1.0)
