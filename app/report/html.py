"""The report as one self-contained HTML file: inline CSS, inline SVG and one inline script of
ours (hover readout and step zoom on the line plots, ``interactive``), no URLs.

Every string that came from a run file (names, metric names, config, error text, findings)
goes through ``html.escape``; a Content-Security-Policy allows that one script by its hash and
forbids every other script and any fetch, so even a rendering bug could not make the page
execute anything else or load anything. Without scripts the plots are the static SVG.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

from ..present import e, earlier_fixes, present, web_html
from ..terminal_text import visible
from .content import Report, RunSection, serious
from .interactive import SCRIPT, SCRIPT_HASH

BRIEF_CAUSES = 2
BRIEF_FIXES = 3
BREAK_AFTER = re.compile(r"([_/,])(?=\S)")    # a table cell may wrap after these, never inside a word

CSP = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '{SCRIPT_HASH}'"
PLOT_HINT = ("Plots: point at a curve for its recorded values; drag across a plot to zoom into those steps "
             "(every plot of the run follows); double-click for all steps.")

CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:980px;color:#222;
  line-height:1.4;padding:0 16px}
h1{font-size:24px;margin-bottom:2px} h2{font-size:20px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
h3{font-size:16px;margin:18px 0 6px} .muted{color:#666;font-size:13px}
table.kv,table.cmp{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
table.kv td,table.cmp td,table.cmp th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
table.kv td:first-child{color:#555;white-space:nowrap;background:#f7f7f7}
table.cmp tr.differs td{background:#fff8e1}
.finding{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:8px 12px;margin:12px 0}
.sev{display:inline-block;color:#fff;border-radius:3px;padding:0 6px;font-size:12px;font-weight:bold}
.symptom{font-family:DejaVu Sans Mono,monospace;font-size:12px;color:#555}
.finding ul,.finding ol{margin:4px 0 6px;padding-left:22px;font-size:14px}
figure{margin:10px 0 16px} figcaption{font-size:12px;color:#555}
figure svg{max-width:100%;height:auto;border:1px solid #eee}
.healthy{color:#2e7d32;font-weight:bold} code{font-size:12px}
ul.glance{list-style:none;padding-left:0;font-size:14px} ul.glance li{margin:3px 0}
"""


def _kv_table(rows) -> str:
    body = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _figure(fig, zoom: str = "") -> str:
    """A figure; a line plot carries what it drew (``data-plot``) and its zoom group (``zoom``:
    the plots that zoom together) for the page's script."""
    cap = f"<figcaption>{e(fig.caption)}</figcaption>" if fig.caption else ""
    attrs = ""
    if getattr(fig, "plot", None) is not None:
        attrs = f' data-plot="{e(json.dumps(fig.plot, separators=(",", ":"), allow_nan=False))}"'
        attrs += f' data-zoom="{e(zoom)}"' if zoom else ""
    return f"<figure{attrs}>{fig.svg}{cap}</figure>"


def breakable(text: str, mark: str) -> str:
    """``text`` escaped, with ``mark`` (<wbr>, or a zero-width space for Qt) after each _ / ,:
    a narrow column wraps "lr0.0001_wd0.1" as "lr0.0001_ | wd0.1", not "lr0.0001_w | d0.1"."""
    return BREAK_AFTER.sub(lambda m: m.group(1) + mark, e(text))


def shown_findings(s: RunSection) -> list:
    """(index, finding, fixes listed before it, in full?) in the order a run's section shows
    them. A brief section (one of many runs) gives warnings and errors in full and each info
    one line; a fix is listed once, by the first finding shown in full that has it."""
    findings = [brief_finding(f) for f in s.findings] if s.brief else s.findings
    full = [j for j, f in enumerate(findings) if not s.brief or serious(f)]
    earlier = dict(zip(full, earlier_fixes([findings[j] for j in full])))
    return [(j, f, earlier.get(j), j in earlier) for j, f in enumerate(findings)]


def brief_finding(f):
    """A finding of a brief section: its BRIEF_CAUSES likeliest causes and BRIEF_FIXES first fixes
    (the run's own report has them all)."""
    return replace(f, causes=f.causes[:BRIEF_CAUSES], fixes=f.fixes[:BRIEF_FIXES])


def finding_line(f) -> tuple:
    """(severity, colour, the rest) of a finding told in one line (an info in a brief section)."""
    v = present(f)
    return v.severity.upper(), v.color, f"{v.symptom}: {v.title}" + (f" ({v.span})" if v.span else "")


def glance(s: RunSection) -> list:
    """(finding index, severity, colour, line) of a full section's findings, for the list under
    its summary: what was found is on the first page, above the plots and the details."""
    if s.brief or not s.findings:
        return []
    return [(j, *finding_line(f)) for j, f in enumerate(s.findings)]


def _run_section(s: RunSection, i: int) -> str:
    """Summary, what was found at a glance, the key plots, then the config and each finding in
    full (the loss curves were last, pages after the summary)."""
    out = [f'<h2 id="run-{i}">{e(s.name)}</h2>', _kv_table(s.summary)]
    lines = glance(s)
    if lines:
        items = "".join(f'<li><span class="sev" style="background:{color}">{e(sev)}</span> '
                        f'<a href="#run-{i}-finding-{j}">{e(text)}</a></li>' for j, sev, color, text in lines)
        out.append(f'<h3>Findings at a glance</h3><ul class="glance">{items}</ul>')
    if s.figures:
        out.append("<h3>Key plots</h3>")
        out.extend(_figure(fig, f"run-{i}") for fig in s.figures)
    if s.config and not s.brief:     # a brief section's config is the comparison's (shared, or a column)
        out += ["<h3>Config</h3>", _kv_table(s.config)]
    out.append(f"<h3>Advisor findings ({len(s.findings)})</h3>")
    if not s.findings:
        out.append('<p class="healthy">No problems found.</p>')
    for j, f, earlier, full in shown_findings(s):    # each fix listed once
        if full:
            figures = "\n".join(_figure(fig, f"run-{i}") for fig in s.finding_figures.get(j, []))
            out.append(web_html(f, anchor=f"run-{i}-finding-{j}", extra=figures, earlier=earlier))
        else:
            sev, color, text = finding_line(f)
            out.append(f'<p id="run-{i}-finding-{j}"><span class="sev" style="background:{color}">{e(sev)}</span> '
                       f"{e(text)}</p>")
    if s.not_checked or s.read_from_logs:
        out.append(not_checked_html(s))
    return "\n".join(out)


def not_checked_html(s, where: str = "from this run") -> str:
    """``s``: a RunSection, or the Comparison (``where``: "in any run")."""
    items = "".join(f"<li>{e(text)}</li>" for text in s.not_checked)
    logs = getattr(s, "read_from_logs", "")
    note = f"<p>{e(logs)}</p>" if logs else ""
    return f"<h3>Not checked (missing {e(where)})</h3><ul>{items}</ul>{note}" if items else note


def comparison_note(c) -> str:
    return "; ".join([("One row per run; the columns are what differs between the runs" if c.by_run
                       else "Rows where the runs differ are highlighted"), *c.notes]) + "." + (
        f" Each run's detail below is brief (its {BRIEF_CAUSES} likeliest causes and first {BRIEF_FIXES} fixes"
        " of each warning); 'trainspect report RUN.h5 -o run.pdf' gives all of it." if c.brief else "")


def comparison_cell(c, i: int, j: int, text: str, mark: str) -> str:
    """Cell ``j`` of row ``i``, breakable at _ / , and bold where it is the lowest loss."""
    body = breakable(text, mark)
    return f"<b>{body}</b>" if (i, j) in c.bold else body


def _comparison(c) -> str:
    head = "".join(f"<th>{breakable(h, '<wbr>')}</th>" for h in c.header)
    body = "".join(
        f'<tr class="{"differs" if differs else ""}"><td>{breakable(label, "<wbr>")}</td>'
        + "".join(f"<td>{comparison_cell(c, i, j, x, '<wbr>')}</td>" for j, x in enumerate(cells)) + "</tr>"
        for i, (label, cells, differs) in enumerate(c.rows))
    out = ['<h2 id="comparison">Comparison</h2>',
           f'<p class="muted">{e(comparison_note(c))}</p>',
           f'<table class="cmp"><tr>{head}</tr>{body}</table>']
    if c.shared:
        out += ["<h3>Settings all runs share</h3>", _kv_table(c.shared)]
    if c.not_checked:
        out.append(not_checked_html(c, "in any run"))
    out.extend(_figure(fig, "comparison") for fig in c.figures)
    return "\n".join(out)


def render_html(report: Report) -> str:
    toc = []
    if report.comparison is not None:
        toc.append('<li><a href="#comparison">Comparison</a></li>')
    for i, s in enumerate(report.runs):
        n = len(s.findings)
        toc.append(f'<li><a href="#run-{i}">{e(s.name)}</a> <span class="muted">({n} finding{"s" if n != 1 else ""})</span></li>')
    body = [f"<h1>{e(report.title)}</h1>",
            f'<div class="muted">written by trainspect on {e(report.created)}; self-contained, works offline</div>',
            f'<p class="muted" id="plot-hint" hidden>{e(PLOT_HINT)}</p>',
            f"<ul>{''.join(toc)}</ul>"]
    if report.comparison is not None:
        body.append(_comparison(report.comparison))
    body.extend(_run_section(s, i) for i, s in enumerate(report.runs))
    # Names from run files are shown, not obeyed: a control character ("acc\x01") or a bidi
    # override is written as an escape, as in the terminal (the page, not our script).
    page = visible("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
                   '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                   f"<title>{e(report.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                   + "\n".join(body))
    return page + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"


def write_html(report: Report, path) -> None:
    # errors=: a run path that is not valid UTF-8 is written as \udcff, not a crash.
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(render_html(report))
