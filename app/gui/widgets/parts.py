"""Pieces the layer panels (heatmap, distributions) build their canvases from."""
from __future__ import annotations

import copy
import math
import re
from datetime import datetime

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

from ...report.svgplot import fmt_value
from ...short_names import short_labels
from ..plain_text import rich, shown, tip

BADGE_MIN_PX = 60   # a run badge squeezed this far still shows its colour and the name's start
NAME_CHARS = 80   # names (runs, metrics, layers) longer than this are cut with "…" in labels
BADGE_CHARS = 32  # a run's name in a panel's header
LOG_TICK_PX = 24    # a label on a vertical log axis needs this much height (9 pt text and a gap)
LOG_MANTISSAS = (range(1, 10), (1, 2, 5), (1, 3), (1,))   # log tick values per decade, finest first


class StepAxis(pg.AxisItem):
    """An axis of optimizer steps: no tick between two steps (a 5-step run read 0.5, 1.5, ...),
    and no SI prefix (a one-step run's axis read "step (x0.001)")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):
        # Without the SI prefix pyqtgraph writes 1000000 as "1e+06": say "1M" instead.
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [step_tick(v) for v in values]

    def tickSpacing(self, minVal, maxVal, size):
        return [(max(spacing, 1.0), offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size)]


def _decimals(spacing: float) -> int:
    """Digits after the point that tell ticks ``spacing`` seconds apart from each other."""
    if spacing >= 1 or spacing <= 0:
        return 0
    return min(6, int(np.ceil(-np.log10(spacing) - 1e-3)))   # 0.0999999 apart: one decimal


def tick_spacing(values, spacing: float) -> float:
    """The step that writes every tick of ``values`` exactly (0.25 s apart: 0.01, so 17.75 is
    not written 17.8), at least ``spacing``'s own digits, at most milliseconds."""
    v = np.asarray(values, dtype=np.float64)
    d = _decimals(spacing)
    if v.size:
        frac = v - np.floor(v)
        d = next((k for k in range(0, 4) if np.all(np.abs(frac * 10.0 ** k - np.round(frac * 10.0 ** k)) < 1e-3)), 3)
    return 10.0 ** -d if d else max(1.0, spacing)


def clock_text(t: float, spacing: float, utc_offset=None) -> str:
    """A wall-clock tick: HH:MM:SS, with as many decimals of the second as ``spacing`` needs
    ("13:05:17.8", not the float noise "17.799"); ticks a day or more apart are dates. Local
    time, or ``utc_offset`` seconds west of UTC (pyqtgraph's DateAxisItem convention)."""
    from pyqtgraph.graphicsItems.DateAxisItem import adjustTimestampToPreferredUtcOffset, utcfromtimestamp

    d = _decimals(spacing)
    t = round(float(t), d)
    when = (datetime.fromtimestamp(t) if utc_offset is None
            else utcfromtimestamp(adjustTimestampToPreferredUtcOffset(t, utc_offset)))
    if spacing >= 86400:
        return when.strftime("%Y-%m-%d")
    text = when.strftime("%H:%M:%S")
    if d:
        text += f"{round(when.microsecond / 1e6, d):.{d}f}"[1:]
    return text


def duration_text(seconds: float, spacing: float) -> str:
    """A time-since-start tick: "0.5 s", "42 s" below a minute apart, else "1:30" (m:ss) or
    "2:05:00" (h:mm:ss); never an SI factor on the axis title."""
    if spacing < 60:
        d = _decimals(spacing)
        return f"{round(seconds, d):.{d}f} s"
    total = int(round(seconds))
    sign, total = ("-" if total < 0 else ""), abs(total)
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"


class WallTimeAxis(pg.DateAxisItem):
    """Wall-clock x axis: pyqtgraph's tick placement, labels HH:MM:SS[.s] (its sub-second zoom
    printed "17.300 ... 17.799": seconds of the minute with float noise, no hour or minute)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Tick spacing follows each zoom level's example label: ours are longer (13:05:17.8, not
        # 17.8), and with its short examples the ticks were too close to be drawn at all.
        levels = {}
        for spacing, level in self.zoomLevels.items():
            finest = min(spec.spacing for spec in level.tickSpecs)
            level = copy.copy(level)
            level.exampleText = "00:00:00.0" if finest < 1 else "00:00:00" if finest < 86400 else "0000-00-00"
            levels[spacing] = level
        self.zoomLevels = levels

    def setZoomLevelForDensity(self, density):
        super().setZoomLevelForDensity(density)
        # Room between labels: pyqtgraph draws no tick text at all when the labels would fill
        # more than 80 % of the axis (its textFillLimits), and it spaces them just apart.
        self.minSpacing *= 1.3

    def tickStrings(self, values, scale, spacing):
        # pyqtgraph passes its zoom level's spacing (0.001 for ticks 0.1 s apart): the decimals
        # come from the ticks themselves
        gaps = np.diff(np.asarray(values, dtype=np.float64))
        gaps = gaps[gaps > 0]
        spacing = tick_spacing(values, float(gaps.min()) if gaps.size else spacing)
        try:
            return [clock_text(v, spacing, self.utcOffset) for v in values]
        except (OverflowError, ValueError, OSError):
            return super().tickStrings(values, scale, spacing)


TIME_SPACINGS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TIME_TICK_PX = 80          # a relative-time tick label needs about this much width


class RelativeTimeAxis(pg.AxisItem):
    """Time since the run started: ticks in seconds ("0.5 s") or m:ss / h:mm:ss at round
    minutes and hours, and no SI prefix ("time since start (s) (x0.001)" was on screen)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal, maxVal, size):
        span = maxVal - minVal
        if span <= 0 or span < 120:
            return super().tickSpacing(minVal, maxVal, size)
        want = span / max(1.0, size / TIME_TICK_PX)
        major = next((s for s in TIME_SPACINGS if s >= want), None)
        if major is None:
            return super().tickSpacing(minVal, maxVal, size)
        minor = max([s for s in TIME_SPACINGS if s < major and major % s == 0], default=major)
        return [(float(major), 0.0), (float(minor), 0.0)]

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [duration_text(v, tick_spacing(values, spacing) if spacing < 60 else spacing) for v in values]


class LogFitAxis(pg.AxisItem):
    """An axis whose log-scale labels fit its length. pyqtgraph labels every 2..9 x 10^n when
    fewer than three decades are in view, whatever the room: on the 90 px plot under the Layers
    heatmap "6·10 4·10 2·10 10 8 6 4 2 1 0.8 0.6" printed over each other."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        ticks = log_ticks(minVal, maxVal, max(1, int(size // LOG_TICK_PX)))
        return [(None, ticks)] if ticks else super().logTickValues(minVal, maxVal, size, stdTicks)

    def logTickStrings(self, values, scale, spacing):
        return [fmt_value(10.0 ** v * scale) for v in values]


def log_ticks(lo: float, hi: float, most: int) -> list[float]:
    """log10 of the tick values of a log axis over [lo, hi] (log10 units): the finest of every
    digit, 1-2-5, 1-3 or the decades with at most ``most`` ticks; every k-th decade when even
    the decades are too many."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    for mantissas in LOG_MANTISSAS:
        ticks = [t for d in decades for m in mantissas if lo <= (t := d + math.log10(m)) <= hi]
        if len(ticks) <= most:
            return ticks
    every = math.ceil(len(ticks) / most)
    return [t for t in ticks if round(t) % every == 0]


def step_tick(step: float) -> str:
    """A step axis tick: 7, 250000, 1.5M."""
    if abs(step) >= 1e6:
        return f"{step / 1e6:g}M"
    return str(int(round(step)))


def elide(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with "…" (the full text goes in a tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shrinkable(label: QLabel) -> QLabel:
    """A label whose text never sets the width of its dock or window: a 1,000-character run
    name in it once made the window 10,828 px wide. The layout gives it a width; text that
    does not fit is cut (or wrapped, for word-wrapped labels)."""
    label.setSizePolicy(QSizePolicy.Ignored, label.sizePolicy().verticalPolicy())
    label.setMinimumWidth(0)
    return label


def run_badge() -> QLabel:
    """A panel header naming the run it shows, in the run's colour: with two runs open to
    compare, the Layers and Distributions tabs did not say whose layers they were."""
    label = QLabel("")
    label.setTextFormat(Qt.RichText)    # our colour square; the name in it is escaped
    # it takes the width its name asks for when there is room, but never sets the window's
    # minimum width (a long run name made an 800 px window impossible with a run open)
    label.setMinimumWidth(BADGE_MIN_PX)
    return label


def show_run(label: QLabel, entry) -> None:
    """``label`` (a :func:`run_badge`) names ``entry`` (None: no run)."""
    if entry is None:
        label.setText("")
        label.setToolTip("")
        return
    name = shown(entry.name)
    label.setText(f"<span style='color:{entry.color}'>&#9632;</span>&nbsp;<b>{rich(elide(name, BADGE_CHARS))}</b>")
    label.setToolTip(tip(name))


def any_width_title(plot) -> None:
    """``plot``'s title never sets the plot's least width (pyqtgraph's LabelItem makes its
    text's size its least size on every text change and resize): a title longer than the plot
    runs into the room beside it instead of pushing the plot out of its canvas."""
    label = plot.titleLabel
    if getattr(label, "_any_width", False):
        return
    own = label.updateMin

    def update_min():
        own()
        label.setMinimumWidth(0)
        hints = getattr(label, "_sizeHint", None)
        if isinstance(hints, dict) and Qt.SizeHint.MinimumSize in hints:
            hints[Qt.SizeHint.MinimumSize] = (0, hints[Qt.SizeHint.MinimumSize][1])
            label.updateGeometry()

    label.updateMin = update_min
    label._any_width = True
    update_min()


def image_with_colorbar(canvas, plot, col: int, colormap: str, label: str | None = None):
    """A row-major ImageItem in ``plot`` and its fixed colour bar in column ``col`` of ``canvas``."""
    image = pg.ImageItem(axisOrder="row-major")
    plot.addItem(image)
    bar = pg.ColorBarItem(colorMap=pg.colormap.get(colormap), interactive=False, width=12, label=label)
    # Levels are log10 values or fractions: "log10 activation std (x0.001)" over ticks -600..200
    # read as a scale of thousands; the values themselves are what to read.
    bar.axis.enableAutoSIPrefix(False)
    bar.setImageItem(image)
    canvas.addItem(bar, row=0, col=col)
    return image, bar


def message_label() -> QLabel:
    """A centred label shown instead of empty axes (never wider than its panel: an error
    naming a long path is cut, not the window widened)."""
    label = shrinkable(QLabel(""))
    label.setTextFormat(Qt.PlainText)   # it names runs and files: text, never HTML
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)   # the "nothing recorded" explanations are a sentence long
    return label


def point_under_mouse(plot, event):
    """The view coordinates of a SignalProxy mouse-move ``event`` over ``plot``, or None outside it."""
    pos = event[0]
    vb = plot.getViewBox()
    return vb.mapSceneToView(pos) if vb.sceneBoundingRect().contains(pos) else None


def bucket_under(first, last, n_rows: int, step: float, row: float):
    """``(row, column)`` of a rows x step-buckets image under a point (column ``i`` spans steps
    ``first[i]..last[i]``), or None outside the image."""
    if len(first) == 0 or not 0 <= row < n_rows:
        return None
    i = int(np.searchsorted(first, step, side="right") - 1)
    if i < 0 or step > last[-1] + 1:
        return None
    return int(row), i


def steps_text(first: int, last: int, pooled: str = "") -> str:
    """"step 5" or "steps 5–9" (``pooled`` says how a bucket of several steps was combined)."""
    return f"step {first}" if first == last else f"steps {first}–{last}{pooled}"


class CellHover:
    """While the mouse moves over ``plot``, ``label`` shows ``describe(*cell_at(x, y))`` (a blank
    outside any cell); mouse moves are rate-limited."""

    def __init__(self, canvas, plot, cell_at, label, describe):
        self.plot, self.cell_at, self.label, self.describe = plot, cell_at, label, describe
        self.proxy = pg.SignalProxy(canvas.scene().sigMouseMoved, rateLimit=60, slot=self.move)

    def move(self, event) -> None:
        """A SignalProxy mouse-move ``event`` (a tuple holding the scene position)."""
        p = point_under_mouse(self.plot, event)
        if p is None:
            return
        cell = self.cell_at(p.x(), p.y())
        self.label.setText(" " if cell is None else self.describe(*cell))


_TYPED = re.compile(r"^(.*\S) (\([^()]*\))$")      # "enc.layers.0.linear2.weight (Linear)"


def _snap_to_dot(label: str, whole: str) -> str:
    """An elision that cut a name part in two ("…rs.0.self_attn") starts at the next dot instead
    ("…0.self_attn"): half a word reads as another name."""
    if "…" not in label:
        return label
    head, tail = label.rsplit("…", 1)
    start = len(whole) - len(tail) if whole.endswith(tail) else -1
    if start > 0 and whole[start - 1] != "." and "." in tail[:-1]:
        tail = tail.split(".", 1)[1]
    return head + "…" + tail


def layer_labels(names, fit: int) -> list[str]:
    """Layer names for an axis, a legend or a title, at most ``fit`` characters, telling the
    layers apart (UX review trial14 L3). The part that tells rows apart is the module path's
    *end*: "enc.layers.0.self_attn.in_proj_weight (MultiheadAttention)" was cut in its middle to
    "layers.0.…_weight (MultiheadAttention)" because the type took the room. So a label that
    does not fit loses its type first (the hover and the lists have it), then the prefix every
    layer shares and the path's left end (short_names.short_labels), never half a name part."""
    names = list(names)
    parts = [_TYPED.match(n) for n in names]
    typed = [(m.group(1), m.group(2)) if m else (n, "") for m, n in zip(parts, names)]
    too_long = any(len(n) > fit for n in names)
    plain = [path if too_long and len(name) > fit else name for (path, _), name in zip(typed, names)]
    short = short_labels(plain, fit)
    if too_long:
        short = [_snap_to_dot(s, p) for s, p in zip(short, plain)]
    if len(set(short)) < len(set(names)):            # the snap made two alike: short_labels' own
        short = short_labels(plain, fit)
    return short
