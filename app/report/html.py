"""The report as one self-contained HTML file: inline CSS and inline SVG, no scripts, no URLs.

Every string that came from a run file (names, metric names, config, error text, findings)
goes through ``html.escape``; a Content-Security-Policy forbids scripts and any fetch, so even
a rendering bug could not make the page execute or load anything.
"""
from __future__ import annotations

from ..present import e, earlier_fixes, web_html
from .content import Report, RunSection

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

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


def _kv_table(rows) -> str:
    body = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _figure(fig) -> str:
    cap = f"<figcaption>{e(fig.caption)}</figcaption>" if fig.caption else ""
    return f"<figure>{fig.svg}{cap}</figure>"


def _run_section(s: RunSection, i: int) -> str:
    out = [f'<h2 id="run-{i}">{e(s.name)}</h2>', _kv_table(s.summary)]
    if s.config:
        out += ["<h3>Config</h3>", _kv_table(s.config)]
    out.append(f"<h3>Advisor findings ({len(s.findings)})</h3>")
    if not s.findings:
        out.append('<p class="healthy">No problems found.</p>')
    for j, (f, earlier) in enumerate(zip(s.findings, earlier_fixes(s.findings))):   # each fix listed once
        figures = "\n".join(_figure(fig) for fig in s.finding_figures.get(j, []))
        out.append(web_html(f, anchor=f"run-{i}-finding-{j}", extra=figures, earlier=earlier))
    if s.not_checked or s.read_from_logs:
        out.append(not_checked_html(s))
    if s.figures:
        out.append("<h3>Key plots</h3>")
        out.extend(_figure(fig) for fig in s.figures)
    return "\n".join(out)


def not_checked_html(s: RunSection) -> str:
    items = "".join(f"<li>{e(text)}</li>" for text in s.not_checked)
    note = f"<p>{e(s.read_from_logs)}</p>" if s.read_from_logs else ""
    return f"<h3>Not checked (missing from this run)</h3><ul>{items}</ul>{note}" if items else note


def _comparison(c) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in c.header)
    body = "".join(
        f'<tr class="{"differs" if differs else ""}"><td>{e(label)}</td>' + "".join(f"<td>{e(x)}</td>" for x in cells) + "</tr>"
        for label, cells, differs in c.rows)
    note = ("One row per run; the columns are what differs between the runs." if c.by_run
            else "Rows where the runs differ are highlighted.")
    out = ['<h2 id="comparison">Comparison</h2>',
           f'<p class="muted">{note}</p>',
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
    # errors=: a run path that is not valid UTF-8 is written as \udcff, not a crash.
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(render_html(report))
