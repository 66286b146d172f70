"""A report's sweep figure: one result against one setting, a point per run in its colour and
named beside it (the Compare tab's scatter plot, as SVG Tiny for the HTML and PDF reports).

The axes are chosen as in the app (``app/sweep_scatter.py``): a numeric setting that differs
between the runs (the learning rate first, on a log axis when it spans decades) against the
best validation loss (else the training loss's end level).
"""
from __future__ import annotations

import math

from ..sweep_scatter import default_axes, log_axis, numeric_keys, points, value_ticks
from .svgplot import FONT, _num, esc, fmt_value, log_ticks, nice_ticks, shorten

LABEL_CHARS = 22
LABEL_GAP_PX = 13       # a name closer than this to one already written is left out (in the table)


def sweep_rows(sections) -> list:
    """The report's run sections as run-table rows: their config and loss columns."""
    from ..run_table import RunRow, loss_values    # run_table imports report.content, which imports this
    return [RunRow(s.name, str(s.metrics.get("state", "")), s.metrics.get("steps"), dict(s.config),
                   loss_values(s.metrics)) for s in sections]


def scatter_plot(found, names, colors, x_label: str, y_label: str, title: str = "", width: int = 820,
                 height: int = 300) -> str:
    """``found``: (row index, x, y) from ``sweep_scatter.points``; ``names``/``colors`` by row index."""
    W, H = width, height
    left, right, top, bottom = 64, 150, 26 if title else 12, 40      # right: room for the last points' names
    pw, ph = W - left - right, H - top - bottom
    log = log_axis([x for _, x, _ in found])
    xs = [math.log10(x) if log else x for _, x, _ in found]
    ys = [y for _, _, y in found]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = (x1 - x0) * 0.06
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = min(ys), max(ys)
    if y1 <= y0:
        y0, y1 = y0 - (abs(y0) * 0.1 or 0.5), y1 + (abs(y1) * 0.1 or 0.5)
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def px(x):
        return left + (x - x0) / (x1 - x0) * pw

    def py(y):
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="{FONT}" font-size="11">',
           f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fcfcfc" stroke="#bbb"/>']
    if title:
        out.append(f'<text x="{left}" y="17" font-size="13" font-weight="bold" fill="#222">{esc(title)}</text>')
    for t in nice_ticks(y0, y1):
        yy = py(t)
        out.append(f'<line x1="{left}" y1="{_num(yy)}" x2="{left + pw}" y2="{_num(yy)}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{left - 5}" y="{_num(yy + 4)}" text-anchor="end" fill="#444">{esc(fmt_value(t))}</text>')
    distinct = value_ticks([x for _, x, _ in found])
    ticks = [(math.log10(x) if log else x, x) for x in distinct] if distinct is not None else \
        [(t, 10 ** t if log else t) for t in (log_ticks(x0, x1) if log else nice_ticks(x0, x1, 6))]
    for t, value in ticks:
        xx = px(t)
        out.append(f'<line x1="{_num(xx)}" y1="{top}" x2="{_num(xx)}" y2="{top + ph}" stroke="#eeeeee"/>')
        out.append(f'<text x="{_num(xx)}" y="{top + ph + 15}" text-anchor="middle" fill="#444">{esc(fmt_value(value))}</text>')
    out.append(f'<text x="{left + pw}" y="{top + ph + 32}" text-anchor="end" fill="#555">'
               f'{esc(x_label + (" (log scale)" if log else ""))}</text>')
    cx, cy = 12, top + ph / 2
    out.append(f'<text x="{cx}" y="{_num(cy)}" text-anchor="middle" fill="#555" '
               f'transform="rotate(-90 {cx} {_num(cy)})">{esc(y_label)}</text>')
    written = []
    for (i, _, _), x, y in zip(found, xs, ys):
        X, Y = px(x), py(y)
        out.append(f'<circle cx="{_num(X)}" cy="{_num(Y)}" r="5" fill="{colors[i]}" stroke="#333" stroke-width="0.6"/>')
        if all(abs(Y - wy) >= LABEL_GAP_PX or abs(X - wx) >= 60 for wx, wy in written):
            written.append((X, Y))
            out.append(f'<text x="{_num(X + 8)}" y="{_num(Y + 4)}" fill="#333">{esc(shorten(names[i], LABEL_CHARS))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def sweep_svg(sections, colors) -> tuple[str, str, str] | None:
    """(title, svg, caption) of the sweep figure of a report's runs, or None when no numeric
    setting differs between them (or fewer than two runs have both numbers)."""
    rows = sweep_rows(sections)
    x_key, y_title = default_axes(numeric_keys(rows), list(dict.fromkeys(t for r in rows for t in r.values)))
    if x_key is None or y_title is None:
        return None
    found = points(rows, x_key, y_title)
    if len(found) < 2:
        return None
    title = f"{y_title} against {x_key}"
    svg = scatter_plot(found, [r.name for r in rows], colors, x_key, y_title, title=title.capitalize())
    caption = f"One point per run: {y_title} against {x_key}" + (
        f" ({len(rows) - len(found)} run(s) without both)" if len(found) < len(rows) else "") + "."
    return title, svg, caption
