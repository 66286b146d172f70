"""A small, dependency-free numpy -> SVG plotter for reports: line plots and heatmaps.

Why not pyqtgraph/matplotlib: the HTML report must build without a display and without
extra packages, and the same SVG text is drawn into the PDF by Qt's QSvgRenderer. So only
SVG Tiny features are used (rect, path, line, circle, text, g; presentation attributes, no CSS).

Long series are reduced to the minimum and maximum of every pixel column (never sampled),
so a one-step spike is always drawn. NaN/Inf values break the line and are marked in red.
Every piece of text is escaped: labels may come from a hostile run file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import numpy as np

from ..terminal_text import visible
from ..run_colours import PALETTE  # noqa: F401 - the app's run colours: one run, one colour in both
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
NONFINITE_COLOR = "#d00000"
SPAN_COLOR = "#ffcc00"
# viridis at 9 anchors (matplotlib's table), interpolated linearly
_VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], float)
NONFINITE_CELL = "#ff00ff"
MAX_HEATMAP_COLUMNS = 160
MAX_HEATMAP_ROWS = 48
MAX_LABEL_CHARS = 30
Y_LIMIT = 1e300        # |values| beyond are drawn at it: the range of +-1e308 (float64 metrics) is Inf
MAX_DECADE = 308       # 10 ** 309 overflows: no tick label above


# Not XML at all, escaped or not (lone surrogates, U+FFFE/U+FFFF): the PDF's SVG parser refuses
# the whole plot; written as U+FFFD.
_NOT_XML = {c: 0xFFFD for c in (*range(0xD800, 0xE000), 0xFFFE, 0xFFFF)}


def shown(text) -> str:
    """A name read from a run file as a plot shows it: control characters (not XML: a metric
    named "acc\x01" made the PDF report fail with 'a report plot is not valid SVG') and bidi
    overrides written as escapes, like the terminal's."""
    return visible(str(text)).translate(_NOT_XML)


def esc(text) -> str:
    """Escape for SVG/HTML text and attribute values (quotes included)."""
    return escape(shown(text), quote=True)


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"


def fmt_value(v: float) -> str:
    """Short tick / legend label for a number."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    text = f"{v:.4g}"
    if "e" in text or abs(v) < 1e-3:      # 1e+04 -> 1e4, 2.50e-05 -> 2.5e-5
        m, e = f"{v:.3e}".split("e")
        text = f"{m.rstrip('0').rstrip('.')}e{int(e)}"
    return text


def fmt_step(v: float, tick: bool = True) -> str:
    """A step for people, never "1.7e5": 170000 -> "170k" on a tick (``tick``), "170,000" in a
    sentence; other whole numbers with separators (12,345); anything else as ``fmt_value``."""
    if not math.isfinite(v) or v != int(v) or abs(v) >= 1e15:
        return fmt_value(v)
    n = int(v)
    if tick and abs(n) >= 10_000 and n % 1000 == 0:
        return f"{n // 1000:,}k"
    return f"{n:,}"


def shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """Long layer names keep their informative end (``...encoder.3.fc.weight``)."""
    text = str(text)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


# ------------------------------------------------------------------ ticks
def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    if not 1e-300 < raw < 1e300:     # a range of subnormals (10 ** -324 is 0) or beyond: its ends
        return [lo, hi]
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def log_ticks(lo_exp: float, hi_exp: float) -> list[float]:
    """Decade exponents inside [lo_exp, hi_exp], thinned to at most 7."""
    first, last = math.ceil(lo_exp - 1e-9), math.floor(hi_exp + 1e-9)
    exps = list(range(first, last + 1))
    stride = max(1, math.ceil(len(exps) / 7))
    return [float(e) for e in exps[::stride]]


# ------------------------------------------------------------------ decimation
def peak_decimate(x: np.ndarray, y: np.ndarray, x0: float, x1: float, n_columns: int):
    """Keep the min and the max of every pixel column (in their original order).

    ``x`` must be ascending. Short series are returned unchanged. Non-finite ``y`` must be
    removed by the caller (the line is split at them).
    """
    n = len(x)
    if n <= 2 * n_columns or x1 <= x0:
        return x, y
    col = np.clip(((x - x0) / (x1 - x0) * n_columns).astype(np.int64), 0, n_columns - 1)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], n]
    seg = np.repeat(np.arange(len(starts)), ends - starts)
    index = np.arange(n)
    # index of the first minimum and of the first maximum of every column
    first_min = np.minimum.reduceat(np.where(y == np.minimum.reduceat(y, starts)[seg], index, n), starts)
    first_max = np.minimum.reduceat(np.where(y == np.maximum.reduceat(y, starts)[seg], index, n), starts)
    keep = np.unique(np.concatenate([first_min, first_max, starts, ends - 1]))
    return x[keep], y[keep]


# ------------------------------------------------------------------ line plots
@dataclass
class Line:
    x: np.ndarray
    y: np.ndarray
    label: str = ""
    color: str = PALETTE[0]
    width: float = 1.3
    opacity: float = 1.0


@dataclass
class PlotSpec:
    title: str = ""
    xlabel: str = "step"
    ylabel: str = ""
    log_y: object = "auto"          # True, False or "auto" (log when positive and > 2 decades)
    width: int = 720
    height: int = 240
    spans: list = field(default_factory=list)     # (x0, x1) shaded: a finding's step span
    markers: list = field(default_factory=list)   # (x, y) circled: a finding's evidence points
    vlines: list = field(default_factory=list)    # (x, label) dashed vertical lines
    span_label: str = "finding's steps"           # the key that explains the shading and the circles
    marker_label: str = "evidence"


def _finite_range(values) -> tuple[float, float]:
    vals = [v[np.isfinite(v)] for v in values if len(v)]
    vals = [v for v in vals if v.size]
    if not vals:
        return math.nan, math.nan
    return float(min(v.min() for v in vals)), float(max(v.max() for v in vals))


def _should_log(lines: list[Line]) -> bool:
    ys = [ln.y[np.isfinite(ln.y)] for ln in lines]
    ys = [y for y in ys if y.size]
    if not ys:
        return False
    lo = min(float(y.min()) for y in ys)
    hi = max(float(y.max()) for y in ys)
    return lo > 0 and hi / lo >= 100     # two decades or more: a linear axis flattens the small end


def _segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is True."""
    if not mask.size:
        return []
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


LEGEND_CHAR_PX = 6.6    # a generous width of one character at font-size 11 (sans-serif)
LEGEND_SWATCH_PX = 33   # the line sample, its gap and the space before the next entry


def _legend_layout(labels, width: float) -> tuple[int, int]:
    """(columns, characters per label) so that no entry runs into the next: four columns of
    ~160 px took labels of 34 characters (~220 px), and long run names overlapped."""
    if not labels:
        return 4, 34
    longest = min(34, max(len(str(t)) for t in labels))
    cols = int(max(1, min(4, width // (LEGEND_SWATCH_PX + LEGEND_CHAR_PX * longest))))
    return cols, max(8, min(longest, int((width / cols - LEGEND_SWATCH_PX) // LEGEND_CHAR_PX)))


def _marks_key(spec: PlotSpec, spans: list, right: float) -> list:
    """A key at the top right, on the title's line, for the shaded span and the circled points:
    unexplained, they read as decoration (trial14 UX M3)."""
    items = ([("span", spec.span_label)] if spans and spec.span_label else []) + \
            ([("marker", spec.marker_label)] if spec.markers and spec.marker_label else [])
    out, x = [], right
    for kind, label in reversed(items):
        x -= len(label) * LEGEND_CHAR_PX
        out.append(f'<text x="{_num(x)}" y="17" fill="#444">{esc(label)}</text>')
        x -= 16
        if kind == "span":
            out.append(f'<rect x="{_num(x)}" y="8" width="12" height="11" fill="{SPAN_COLOR}" fill-opacity="0.5" '
                       f'stroke="#d9ad00" stroke-width="0.6"/>')
        else:
            out.append(f'<circle cx="{_num(x + 6)}" cy="13.5" r="4.5" fill="none" stroke="{NONFINITE_COLOR}" '
                       f'stroke-width="1.6"/>')
        x -= 14
    return out


MAX_NONFINITE_BARS = 400


def _nonfinite_ranges(lines: list) -> list:
    """(first x, last x) of every run of consecutive NaN/Inf points of any line, merged across
    lines where they overlap, in order."""
    ranges = []
    for ln in lines:
        y, x = np.asarray(ln.y, float), np.asarray(ln.x, float)
        for a, b in _segments(~np.isfinite(y) & np.isfinite(x))[:10 * MAX_NONFINITE_BARS]:
            ranges.append((float(x[a]), float(x[b - 1])))
    merged = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def line_plot(lines: list[Line], spec: PlotSpec | None = None) -> str:
    """An SVG line plot with axes, ticks, legend, shaded spans and evidence markers."""
    return line_plot_drawn(lines, spec)[0]


def line_plot_drawn(lines: list[Line], spec: PlotSpec | None = None) -> tuple[str, dict | None]:
    """(the SVG of ``line_plot``, what it drew: ``drawn_data``), for the HTML report's hover and
    zoom. The parts that move with the step axis are SVG groups marked ``data-x`` (no effect on
    how the SVG draws: the PDF's pictures are the same)."""
    spec = spec or PlotSpec()
    W, H = spec.width, spec.height
    left, right, top, bottom = 64, 14, 26 if spec.title else 10, 34
    legend = [ln for ln in lines if ln.label]
    legend_cols, legend_chars = _legend_layout([ln.label for ln in legend], W - left - right)
    legend_rows = math.ceil(len(legend) / legend_cols) if len(legend) > 1 else 0
    bottom += 16 * legend_rows
    pw, ph = W - left - right, H - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="{FONT}" font-size="11">',
           f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>']
    if spec.title:
        out.append(f'<text x="{left}" y="17" font-size="13" font-weight="bold" fill="#222">{esc(spec.title)}</text>')
    lines = [Line(np.asarray(ln.x, float), np.asarray(ln.y, float), ln.label, ln.color, ln.width, ln.opacity)
             for ln in lines]
    log = _should_log(lines) if spec.log_y == "auto" else bool(spec.log_y)
    # where the data itself is NaN/Inf (marked in red); values <= 0 on a log axis are just gaps
    nonfinite = _nonfinite_ranges(lines)
    bad_runs = [_bad_runs(ln) for ln in lines]
    if log:
        for ln in lines:   # values <= 0 cannot be drawn on a log axis: treat like gaps
            ln.y = np.where(ln.y > 0, ln.y, np.nan) if np.any(np.isfinite(ln.y)) else ln.y
    else:
        for ln in lines:   # a range of +-1e308 overflows to Inf: such values are drawn (and read) at the limit
            huge = np.isfinite(ln.y) & (np.abs(ln.y) > Y_LIMIT)
            if huge.any():
                ln.y = np.where(huge, np.copysign(Y_LIMIT, ln.y), ln.y)
    xr = _finite_range([ln.x for ln in lines] + [np.asarray([s for sp in spec.spans for s in sp], float)])
    ys = [np.log10(ln.y) if log else ln.y for ln in lines]
    with np.errstate(divide="ignore", invalid="ignore"):
        yr = _finite_range(ys)
    if not math.isfinite(xr[0]) or not math.isfinite(yr[0]):
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#777">no finite data</text>')
        out.append("</svg>")
        return "\n".join(out), None
    x0, x1 = xr
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = yr
    if y1 <= y0:
        pad = abs(y0) * 0.1 or (0.5 if not log else 0.5)
        y0, y1 = y0 - pad, y1 + pad
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(x):
        return left + (np.asarray(x, float) - x0) / (x1 - x0) * pw

    def py(y):
        return top + ph - (np.asarray(y, float) - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fcfcfc" stroke="#bbb"/>')
    # spans under everything else
    out.append('<g data-x="spans">')
    for sx0, sx1 in spec.spans:
        a, b = float(px(max(sx0, x0))), float(px(min(sx1, x1)))
        out.append(f'<rect x="{_num(a - 1)}" y="{top}" width="{_num(max(b - a, 0) + 2)}" height="{ph}" '
                   f'fill="{SPAN_COLOR}" fill-opacity="0.25"/>')
    out.append("</g>")
    # y ticks and grid
    yt = [t for t in log_ticks(y0, y1) if t <= MAX_DECADE] if log else nice_ticks(y0, y1)
    for t in yt:
        yy = float(py(t))
        label = fmt_value(10 ** t) if log else fmt_value(t)
        out.append(f'<line x1="{left}" y1="{_num(yy)}" x2="{left + pw}" y2="{_num(yy)}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{left - 5}" y="{_num(yy + 4)}" text-anchor="end" fill="#444">{esc(label)}</text>')
    out.append('<g data-x="ticks">')
    for t in nice_ticks(x0, x1, 6):
        xx = float(px(t))
        out.append(f'<line x1="{_num(xx)}" y1="{top + ph}" x2="{_num(xx)}" y2="{top + ph + 4}" stroke="#666"/>')
        out.append(f'<text x="{_num(xx)}" y="{top + ph + 15}" text-anchor="middle" fill="#444">{esc(fmt_step(t))}</text>')
    out.append("</g>")
    if spec.xlabel:
        out.append(f'<text x="{left + pw}" y="{top + ph + 28}" text-anchor="end" fill="#555">{esc(spec.xlabel)}</text>')
    ylabel = spec.ylabel + (" (log)" if log else "")
    if ylabel.strip():
        cx, cy = 12, top + ph / 2
        out.append(f'<text x="{cx}" y="{_num(cy)}" text-anchor="middle" fill="#555" '
                   f'transform="rotate(-90 {cx} {_num(cy)})">{esc(ylabel)}</text>')
    # data
    out.append('<g data-x="data">')
    drawn = [[] for _ in lines]          # per line: (x, y) of each drawn piece, y as recorded
    for k, (ln, yv) in enumerate(zip(lines, ys)):
        if not len(ln.x):
            continue
        finite = np.isfinite(yv) & np.isfinite(ln.x)
        for a, b in _segments(finite):
            # decimated on the recorded values: log10 keeps their order, so the same points
            xs, yraw = peak_decimate(ln.x[a:b], ln.y[a:b], x0, x1, pw)
            ysg = np.log10(yraw) if log else yraw
            drawn[k].append((xs, yraw))
            X, Y = px(xs), py(ysg)
            if len(X) == 1:
                out.append(f'<circle cx="{_num(X[0])}" cy="{_num(Y[0])}" r="1.8" fill="{ln.color}"/>')
                continue
            d = "M" + " L".join(f"{_num(a_)} {_num(b_)}" for a_, b_ in zip(X, Y))
            out.append(f'<path d="{d}" fill="none" stroke="{ln.color}" stroke-width="{ln.width}" '
                       f'stroke-opacity="{ln.opacity}" stroke-linejoin="round"/>')
    shown = [(a, b) for a, b in nonfinite if b >= x0 and a <= x1]
    for a, b in shown[:MAX_NONFINITE_BARS]:   # a run of NaNs is one solid bar (ticks a column apart read as dashes)
        xa, xb = float(px(max(a, x0))), float(px(min(b, x1)))
        out.append(f'<rect x="{_num(xa - 1)}" y="{top}" width="{_num(max(xb - xa, 0) + 2)}" height="7" '
                   f'fill="{NONFINITE_COLOR}"/>')
    if shown:
        first = max(shown[0][0], x0)
        lx = float(px(first))
        out.append(f'<text x="{_num(min(lx + 4, left + pw - 4))}" y="{top + 18}" fill="{NONFINITE_COLOR}" '
                   f'text-anchor="{"start" if lx < left + pw * 0.7 else "end"}">NaN/Inf from step {esc(fmt_step(first, tick=False))}</text>')
    for vx, vlabel in spec.vlines:
        if x0 <= vx <= x1:
            xx = float(px(vx))
            out.append(f'<line x1="{_num(xx)}" y1="{top}" x2="{_num(xx)}" y2="{top + ph}" stroke="#555" '
                       f'stroke-dasharray="4 3"/>')
            if vlabel:
                out.append(f'<text x="{_num(xx + 3)}" y="{top + 11}" fill="#555">{esc(vlabel)}</text>')
    for mx, my in spec.markers:
        if not (math.isfinite(mx) and math.isfinite(my)) or (log and my <= 0):
            continue
        yy = math.log10(my) if log else my
        cy = min(max(float(py(yy)), top), top + ph)
        out.append(f'<circle cx="{_num(float(px(mx)))}" cy="{_num(cy)}" r="5" fill="none" '
                   f'stroke="{NONFINITE_COLOR}" stroke-width="1.6"/>')
    out.append("</g>")
    out += _marks_key(spec, [sp for sp in spec.spans if sp[1] >= x0 and sp[0] <= x1], left + pw)
    # legend
    if legend_rows:
        col_w = pw / legend_cols
        for i, ln in enumerate(legend):
            lx = left + (i % legend_cols) * col_w
            ly = H - 16 * legend_rows + 16 * (i // legend_cols) + 4
            out.append(f'<line x1="{_num(lx)}" y1="{ly}" x2="{_num(lx + 18)}" y2="{ly}" stroke="{ln.color}" stroke-width="2.5"/>')
            out.append(f'<text x="{_num(lx + 23)}" y="{ly + 4}" fill="#333">{esc(shorten(ln.label, legend_chars))}</text>')
    out.append("</svg>")
    frame = (left, top, pw, ph, x0, x1, y0, y1, log)
    return "\n".join(out), drawn_data(frame, lines, drawn, bad_runs, spec)


def _bad_runs(ln: Line) -> list:
    """[first x, last x, what] of each run of consecutive NaN/Inf points of ``ln``, for the hover
    readout; runs less than a 2000th of the steps apart are merged ("at some steps") when there
    are more than MAX_BAD_RUNS: a line NaN at every other step stays a few kB."""
    y, x = np.asarray(ln.y, float), np.asarray(ln.x, float)
    runs = _segments(~np.isfinite(y) & np.isfinite(x))
    out = [[float(x[a]), float(x[b - 1]), _bad_word(y[a:b])] for a, b in runs]
    if len(out) > MAX_BAD_RUNS:
        gap = (float(np.nanmax(x)) - float(np.nanmin(x))) / 2000
        merged = [out[0]]
        for a, b, word in out[1:]:
            if a - merged[-1][1] <= gap:
                merged[-1] = [merged[-1][0], b, "NaN/Inf at some steps"]
            else:
                merged.append([a, b, word])
        out = merged
    return out


MAX_BAD_RUNS = 400


def _bad_word(values: np.ndarray) -> str:
    if np.all(np.isnan(values)):
        return "NaN"
    if np.all(values == np.inf):
        return "inf"
    if np.all(values == -np.inf):
        return "-inf"
    return "NaN/Inf"


def _digits(values, frame) -> int:
    """Significant digits that put a value within 1/50 px of where it is drawn (6 at least, for
    the readout)."""
    _, _, _, ph, _, _, y0, y1, log = frame
    per_px = (y1 - y0) / max(ph, 1)
    big = max((float(np.max(np.abs(v))) for v in values if len(v)), default=1.0)
    if log:       # a relative error e moves log10 by 0.43 e
        need = 50 / (2.3 * per_px) if per_px > 0 else 1e6
    else:
        need = 25 * big / per_px if per_px > 0 and big > 0 else 1e6
    if not math.isfinite(need):     # a value range of a few subnormals
        return 17
    return int(min(17, max(6, 1 + math.ceil(math.log10(max(need, 1.0))))))


def _numbers(values, digits: int) -> list:
    """Floats for JSON: whole numbers (steps) as ints, others to ``digits`` significant digits."""
    values = np.asarray(values, float)
    if values.size and np.all(values == np.round(values)) and np.all(np.abs(values) < 2 ** 53):
        return values.astype(np.int64).tolist()
    return [float(f"{v:.{digits}g}") for v in values.tolist()]


def drawn_data(frame, lines: list, drawn: list, bad_runs: list, spec: PlotSpec) -> dict:
    """What a line plot drew, as JSON-ready numbers: its frame (plot area in SVG units, step and
    value ranges; value range in log10 on a log axis), each line's drawn points (the recorded
    points the min/max per pixel column kept, never more) and NaN/Inf runs, and the finding's
    spans, circled points and dashed lines. The HTML report's script reads it to snap a hover
    readout to recorded points and to redraw a zoomed step range."""
    left, top, pw, ph, x0, x1, y0, y1, log = frame
    digits = _digits([y for pieces in drawn for _, y in pieces], frame)
    return {
        "title": shown(spec.title), "frame": [left, top, pw, ph], "x": [x0, x1], "y": [y0, y1], "log": bool(log),
        "lines": [{"label": shown(ln.label), "color": ln.color, "width": ln.width, "opacity": ln.opacity,
                   "pieces": [[_numbers(x, 15), _numbers(y, digits)] for x, y in pieces], "bad": bad}
                  for ln, pieces, bad in zip(lines, drawn, bad_runs)],
        "spans": [[float(a), float(b)] for a, b in spec.spans if math.isfinite(a) and math.isfinite(b)],
        "markers": [[float(a), float(b)] for a, b in spec.markers if math.isfinite(a) and math.isfinite(b)],
        "vlines": [[float(a), shown(label)] for a, label in spec.vlines if math.isfinite(a)],
    }


# ------------------------------------------------------------------ heatmaps
def viridis(t: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 [..., 3]."""
    t = np.clip(np.nan_to_num(t, nan=0.0), 0, 1) * (len(_VIRIDIS) - 1)
    i = np.minimum(t.astype(int), len(_VIRIDIS) - 2)
    f = (t - i)[..., None]
    return (_VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f).round().astype(np.uint8)


def pool_max(values: np.ndarray, n: int, axis: int = 0):
    """Max over about equal buckets along ``axis`` (NaN-aware; Inf and all-NaN buckets kept).

    Returns (pooled, edges) with ``edges[i]:edges[i+1]`` the input indices of bucket ``i``.
    """
    m = values.shape[axis]
    if m <= n:
        return values, np.arange(m + 1)
    edges = np.linspace(0, m, n + 1).round().astype(int)
    v = np.moveaxis(values, axis, 0)
    nan = np.isnan(v)
    pooled = np.maximum.reduceat(np.where(nan, -np.inf, v), edges[:-1], axis=0)
    all_nan = np.logical_and.reduceat(nan, edges[:-1], axis=0)
    pooled = np.where(all_nan, np.nan, pooled)
    return np.moveaxis(pooled, 0, axis), edges


def heatmap(values: np.ndarray, steps: np.ndarray, layers: list, *, title: str = "", log="auto",
            width: int = 720, xlabel: str = "step", unit: str = "", vrange=None) -> str:
    """Records x layers as an SVG heatmap (layers top to bottom in model order).

    Columns are pooled with the maximum (a peak in one record stays visible); non-finite
    cells are magenta.
    """
    values = np.asarray(values, float)
    steps = np.asarray(steps, float)
    R, L = values.shape if values.ndim == 2 else (0, 0)
    left, right, top = 210, 96, 26 if title else 8
    cols, col_edges = pool_max(values, MAX_HEATMAP_COLUMNS, axis=0) if R else (values, np.arange(1))
    rows_v, row_edges = pool_max(cols, MAX_HEATMAP_ROWS, axis=1) if L else (cols, np.arange(1))
    nr = rows_v.shape[1] if rows_v.ndim == 2 else 0
    cell_h = max(6.0, min(18.0, 220.0 / max(nr, 1)))
    ph = cell_h * max(nr, 1)
    H = int(top + ph + 40)
    pw = width - left - right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{H}" '
           f'viewBox="0 0 {width} {H}" font-family="{FONT}" font-size="10">',
           f'<rect x="0" y="0" width="{width}" height="{H}" fill="#ffffff"/>']
    if title:
        out.append(f'<text x="{left}" y="17" font-size="13" font-weight="bold" fill="#222">{esc(title)}</text>')
    finite = values[np.isfinite(values)]
    if R == 0 or L == 0 or finite.size == 0:
        out.append(f'<text x="{left}" y="{top + 14}" fill="#777">no finite data</text></svg>')
        return "\n".join(out)
    is_log = (finite.min() > 0 and finite.max() / finite.min() > 100) if log == "auto" else bool(log)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.where(rows_v > 0, np.log10(rows_v), np.nan) if is_log else rows_v.copy()
        fin = shown[np.isfinite(shown)]
        if vrange is not None:      # a fixed scale (fractions: 0..1) keeps runs comparable
            lo, hi = float(vrange[0]), float(vrange[1])
        else:                       # robust scale: one extreme cell must not wash out the rest
            lo, hi = (float(np.percentile(fin, 1)), float(np.percentile(fin, 99))) if fin.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        t = (shown - lo) / (hi - lo)
    rgb = viridis(t)
    nc = rows_v.shape[0]
    cw = pw / nc
    for r in range(nr):
        y = top + r * cell_h
        for c in range(nc):
            v = rows_v[c, r]
            fill = NONFINITE_CELL if not np.isfinite(v) else "#%02x%02x%02x" % tuple(rgb[c, r])
            if is_log and np.isfinite(v) and v <= 0:
                fill = "#20002c"
            out.append(f'<rect x="{_num(left + c * cw)}" y="{_num(y)}" width="{_num(cw + 0.6)}" '
                       f'height="{_num(cell_h + 0.6)}" fill="{fill}"/>')
    # layer labels (a pooled row shows its first layer's name + how many)
    every = max(1, math.ceil(nr / (ph / 11)))
    for r in range(0, nr, every):
        a, b = row_edges[r], row_edges[r + 1]
        name = shorten(layers[a]) + (f" (+{b - a - 1})" if b - a > 1 else "")
        out.append(f'<text x="{left - 4}" y="{_num(top + (r + 0.5) * cell_h + 3.5)}" text-anchor="end" '
                   f'fill="#333">{esc(name)}</text>')
    # x ticks in steps
    s0, s1 = float(steps[0]), float(steps[-1])
    for tk in nice_ticks(s0, s1, 6):
        xx = left + (tk - s0) / max(s1 - s0, 1e-12) * pw if s1 > s0 else left + pw / 2
        out.append(f'<line x1="{_num(xx)}" y1="{_num(top + ph)}" x2="{_num(xx)}" y2="{_num(top + ph + 4)}" stroke="#666"/>')
        out.append(f'<text x="{_num(xx)}" y="{_num(top + ph + 15)}" text-anchor="middle" fill="#444">{esc(fmt_step(tk))}</text>')
    out.append(f'<text x="{left + pw}" y="{_num(top + ph + 29)}" text-anchor="end" fill="#555">{esc(xlabel)}</text>')
    # colour bar
    bx, bw = left + pw + 12, 12
    n_bar = 24
    for i in range(n_bar):
        c = viridis(np.array([1 - (i + 0.5) / n_bar]))[0]
        out.append(f'<rect x="{bx}" y="{_num(top + i * ph / n_bar)}" width="{bw}" height="{_num(ph / n_bar + 0.6)}" '
                   f'fill="#%02x%02x%02x"/>' % tuple(c))
    hi_label = fmt_value(10 ** hi if is_log else hi)
    lo_label = fmt_value(10 ** lo if is_log else lo)
    out.append(f'<text x="{bx + bw + 4}" y="{_num(top + 9)}" fill="#333">{esc(hi_label)}</text>')
    out.append(f'<text x="{bx + bw + 4}" y="{_num(top + ph)}" fill="#333">{esc(lo_label)}</text>')
    if is_log or unit:
        out.append(f'<text x="{bx + bw + 4}" y="{_num(top + ph / 2 + 4)}" fill="#777">{esc(unit or "")}{" log" if is_log else ""}</text>')
    if not np.all(np.isfinite(rows_v)):
        out.append(f'<rect x="{bx}" y="{_num(top + ph + 8)}" width="{bw}" height="10" fill="{NONFINITE_CELL}"/>')
        out.append(f'<text x="{bx + bw + 4}" y="{_num(top + ph + 17)}" fill="#333">NaN/Inf</text>')
    out.append("</svg>")
    return "\n".join(out)
