"""The report as one self-contained HTML file: inline CSS and inline SVG, no scripts, no URLs.

Every string that came from a run file (names, metric names, config, error text, findings)
goes through ``html.escape``; a Content-Security-Policy forbids scripts and any fetch, so even
a rendering bug could not make the page execute or load anything.
"""
from __future__ import annotations

from html import escape

from .content import Report, RunSection

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SEVERITY_COLORS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}

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
"""


def e(text) -> str:
    return escape(str(text), quote=True)


def _kv_table(rows) -> str:
    body = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _figure(fig) -> str:
    cap = f"<figcaption>{e(fig.caption)}</figcaption>" if fig.caption else ""
    return f"<figure>{fig.svg}{cap}</figure>"


def step_span(f) -> str:
    return f"steps {f.first_step}–{f.last_step}" if f.first_step is not None else ""


def layers_text(f, limit: int = 12) -> str:
    more = f" … (+{len(f.layers) - limit})" if len(f.layers) > limit else ""
    return f"layers: {', '.join(f.layers[:limit])}{more}"


def finding_lists(f, code_tag: str = "code") -> list[tuple[str, str, list[str]]]:
    """(heading, "ul"/"ol", escaped item markup) for a finding's evidence, causes and fixes.

    Shared by the HTML page and the PDF's Qt rich text, which differ only in the markup around them.
    """
    lists = []
    if f.evidence:
        lists.append(("Evidence", "ul", [
            f"<{code_tag}>{e(ev.series)}</{code_tag}>{' (' + e(ev.layer) + ')' if ev.layer else ''}: {e(ev.text)}"
            for ev in f.evidence]))
    if f.causes:
        lists.append(("Likely causes", "ol", [f"<b>{e(c.id)}</b> ({c.confidence:.2f}): {e(c.why)}" for c in f.causes]))
    if f.fixes:
        lists.append(("Fixes, in the order to try them", "ol", [e(x) for x in f.fixes]))
    return lists


def _finding(f, figures, anchor: str) -> str:
    color = SEVERITY_COLORS.get(f.severity, "#999")
    parts = [f'<div class="finding" id="{anchor}" style="border-left-color:{color}">',
             f'<div><span class="sev" style="background:{color}">{e(f.severity.upper())}</span> '
             f'<span class="symptom">{e(f.symptom)}</span> <span class="muted">{e(step_span(f))}</span></div>',
             f"<h3>{e(f.title)}</h3>"]
    if f.layers:
        parts.append(f'<div class="muted">{e(layers_text(f))}</div>')
    for heading, tag, items in finding_lists(f):
        parts.append(f"<b>{heading}</b><{tag}>" + "".join(f"<li>{x}</li>" for x in items) + f"</{tag}>")
    if f.confirm:
        parts.append(f"<div><b>Confirm:</b> {e(f.confirm)}</div>")
    parts.extend(_figure(fig) for fig in figures)
    parts.append("</div>")
    return "\n".join(parts)


def _run_section(s: RunSection, i: int) -> str:
    out = [f'<h2 id="run-{i}">{e(s.name)}</h2>', _kv_table(s.summary)]
    if s.config:
        out += ["<h3>Config</h3>", _kv_table(s.config)]
    out.append(f"<h3>Advisor findings ({len(s.findings)})</h3>")
    if not s.findings:
        out.append('<p class="healthy">No problems found.</p>')
    for j, f in enumerate(s.findings):
        out.append(_finding(f, s.finding_figures.get(j, []), f"run-{i}-finding-{j}"))
    if s.figures:
        out.append("<h3>Key plots</h3>")
        out.extend(_figure(fig) for fig in s.figures)
    return "\n".join(out)


def _comparison(c) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in c.header)
    body = "".join(
        f'<tr class="{"differs" if differs else ""}"><td>{e(label)}</td>' + "".join(f"<td>{e(x)}</td>" for x in cells) + "</tr>"
        for label, cells, differs in c.rows)
    out = ['<h2 id="comparison">Comparison</h2>',
           '<p class="muted">Rows where the runs differ are highlighted.</p>',
           f'<table class="cmp"><tr>{head}</tr>{body}</table>']
    out.extend(_figure(fig) for fig in c.figures)
    return "\n".join(out)


def render_html(report: Report) -> str:
    toc = []
    if report.comparison is not None:
        toc.append('<li><a href="#comparison">Comparison</a></li>')
    for i, s in enumerate(report.runs):
        n = len(s.findings)
        toc.append(f'<li><a href="#run-{i}">{e(s.name)}</a> <span class="muted">({n} finding{"s" if n != 1 else ""})</span></li>')
    body = [f"<h1>{e(report.title)}</h1>",
            f'<div class="muted">written by trainspect on {e(report.created)}; self-contained, no scripts</div>',
            f"<ul>{''.join(toc)}</ul>"]
    if report.comparison is not None:
        body.append(_comparison(report.comparison))
    body.extend(_run_section(s, i) for i, s in enumerate(report.runs))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{e(report.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_html(report: Report, path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(report))
