"""Run details: status, config, metadata and the model's structure."""
from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout
from trainspect.analysis.frozen import frozen_numel
from trainspect.analysis.optimizer_settings import optimizer_settings

from .. import theme
from ...report.content import clock_text, flatten
from ..plain_text import rich
from .lazy import LazyPanel

MAX_ROWS = 400
# Qt lays the page out on the UI thread: a 300 KB config value (a pasted note, a prompt) in one
# cell froze the window for 9 s, 1 MB for 95 s, 200,000 config keys for 93 s.
MAX_CELL_CHARS = 2000


def _cell(value) -> str:
    text = str(value)
    if len(text) <= MAX_CELL_CHARS:
        return html.escape(text)
    return html.escape(text[:MAX_CELL_CHARS]) + f"<i style='color:{theme.muted_color()}'> … ({len(text):,} characters)</i>"


def _table(rows) -> str:
    return "<table cellspacing='0' cellpadding='2'>" + "".join(
        f"<tr><td style='color:{theme.muted_color()};padding-right:12px'>{_cell(k)}</td><td>{_cell(v)}</td></tr>" for k, v in rows
    ) + "</table>"


def _config_html(config) -> str:
    rows = sorted(flatten(config))
    if not rows:
        return "<p>(none)</p>"
    more = len(rows) - MAX_ROWS
    return _table(rows[:MAX_ROWS]) + (f"<p>… {more:,} more (trainspect info RUN --config lists them)</p>"
                                      if more > 0 else "")


def _from_step(step) -> str:
    return "" if step is None else f"from step {step}"


def run_details_html(run) -> str:
    e = html.escape
    st = run.status()
    color = theme.state_color(st.state)
    meta = run.meta
    out = [f"<h2 style='margin:2px 0'>{rich(run.name)}</h2>",
           f"<p>{e(str(run.path))}</p>",
           f"<p><b style='color:{color}'>{e(st.describe(clock=True))}</b></p>"]
    # Nested settings as dotted keys, one a row: an HF Trainer's TrainingArguments were one
    # 3 KB cell of JSON
    out.append("<h3>Config</h3>" + _config_html(run.config))
    info = [("host", meta.get("host", "")), ("started", clock_text(meta.get("start_time")))]
    info += [(f"{k} version", v) for k, v in (meta.get("versions") or {}).items()]
    opt = meta.get("optimizer") or {}
    if opt:
        settings = ", ".join(f"{k}={v}" for k, v in optimizer_settings(opt))
        info.append(("optimizer", f"{opt.get('type', '')} ({settings})" if settings else opt.get("type", "")))
    sched = meta.get("schedule") or {}
    if sched:
        info.append(("schedule", ", ".join(f"{k}={v}" for k, v in sched.items())))
    info.append(("metrics", len(run.scalar_names())))
    info.append(("max step", run.max_step))
    out.append("<h3>Metadata</h3>" + _table(info))
    segments = run.segments()
    if len(segments) > 1:   # a resumed run: when each writer session began, and how the one before ended
        out.append("<h3>Writer sessions</h3>" + _table(
            (f"session {i}", ", ".join(x for x in (clock_text(seg["start_time"]), _from_step(seg["first_step"]),
                                                    seg["note"]) if x))
            for i, seg in enumerate(segments, 1)))
    model = meta.get("model") or {}
    if run.params or run.modules:
        n_params = model.get("n_params") or sum(p.numel for p in run.params)
        frozen = frozen_numel(run.meta, run.params)
        out.append(f"<h3>Model ({len(run.modules)} leaf modules, {n_params:,} parameters"
                   + (f", {frozen:,} frozen" if frozen else "") + ")</h3>")
        out.append("<b>Modules</b>" + _table((m.name, m.type) for m in run.modules[:MAX_ROWS]))
        out.append("<b>Parameters</b>" + _table(
            (p.name, f"{'×'.join(map(str, p.shape))}  ({p.numel:,})") for p in run.params[:MAX_ROWS]))
        if len(run.params) > MAX_ROWS:
            out.append(f"<p>… {len(run.params) - MAX_ROWS} more</p>")
    return "".join(out)


class DetailsPanel(LazyPanel):
    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.text = QTextBrowser()
        self._shown = None            # the run whose details are on screen
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.text)
        self.follow_current_run(runs)
        self.load(runs.current)

    def _load(self, entry) -> None:
        if entry is None:
            self.text.setHtml(f"<p style='color:{theme.muted_color()}'>no run selected</p>")
            return
        if self._shown is not entry.run:
            self._shown = None
            self.say_reading("the details", entry)
        self.read("details", entry, lambda: run_details_html(entry.run), lambda text: self._show(entry, text),
                  "run details")

    def _show(self, entry, text: str) -> None:
        self._shown = entry.run
        self.text.setHtml(text)

    def say(self, text: str, error: bool = False) -> None:
        self._shown = None
        style = f"color:{theme.error_color() if error else theme.muted_color()}"
        self.text.setHtml(f"<p style='{style}'>{html.escape(text)}</p>")

    def _release(self) -> None:
        self._shown = None
