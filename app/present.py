"""The one way a Finding is presented: the CLI, the tail, the advisor panel, the HTML and the PDF.

``present(f)`` decides every word once (mark, colour, step span, layer list, each cause with
how well it fits, in words); the three renderers only wrap those words in terminal lines, web HTML
(CSS classes) or Qt rich text (the panel and the PDF both draw Qt's HTML subset). Every
string from a run file is escaped in the HTML renderers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from .vocab import NEUTRAL_COLOR, SEVERITY_COLORS, SEVERITY_MARKS

MAX_LAYERS = 8


@dataclass(frozen=True)
class Section:
    heading: str
    ordered: bool
    items: list                     # (code, text): code is a series name set in monospace, or ""


@dataclass(frozen=True)
class FindingView:
    severity: str
    mark: str                       # fixed-width word for terminals: "ERROR", "WARN ", "info "
    color: str
    symptom: str
    title: str
    span: str                       # "step 40" / "steps 40–90" / ""
    layers: str                     # "layers: a, b … (+3)" / ""
    sections: list = field(default_factory=list)   # evidence, causes, fixes (those present)
    confirm: str = ""
    first_cause: str = ""           # "lr too high (strong fit): why"
    first_fix: str = ""
    chain: str = ""                 # "exploding_gradients -> nan_inf: the gradient norm grew ..." / ""


def step_span(f) -> str:
    if f.first_step is None:
        return ""
    if f.last_step is None or f.first_step == f.last_step:
        return f"step {f.first_step}"
    return f"steps {f.first_step}–{f.last_step}"


def cause_name(cause_id: str) -> str:
    return cause_id.replace("_", " ")


def chain_text(f) -> str:
    """"the gradient norm grew 10^16x over 18 steps from step 27 (steps 27–45), then nan_inf from step 46"."""
    pre = f.precursor
    span = step_span(pre)
    return (f"{pre.summary}" + (f" ({span})" if span else "") + f", then {f.symptom}"
            + (f" from step {f.first_step}" if f.first_step is not None else ""))


def _fix(fix) -> str:
    return getattr(fix, "text", str(fix))


# A cause's score (0..1) says how well it fits this run's evidence on its own: the scores of one
# finding's causes do not add up to 1, and shown as "45% / 30% / 25% / 15%" they were read as
# probabilities (trial14 M9). So every view names the fit in words; --json keeps the number.
FIT_WORDS = ((0.6, "strong fit"), (0.3, "medium fit"), (-math.inf, "weak fit"))


def fit_word(confidence: float) -> str:
    """"strong fit" (>= 0.6), "medium fit" (>= 0.3) or "weak fit"."""
    return next((word for floor, word in FIT_WORDS if confidence >= floor), FIT_WORDS[-1][1])


def _cause(c) -> str:
    return f"{cause_name(c.id)} ({fit_word(c.confidence)}): {c.why}"


def earlier_fixes(findings) -> list[dict]:
    """For each finding of a report, the fixes listed by the findings before it ({fix id: (symptom,
    number)}): a report lists each fix once, later findings point back to it."""
    out, seen = [], {}
    for f in findings:
        out.append(dict(seen))
        for n, fix in enumerate(f.fixes, 1):
            seen.setdefault(_fix_id(fix), (f.symptom, n))
    return out


def _fix_id(fix) -> str:
    return getattr(fix, "id", str(fix))


def _fix_items(f, earlier: dict | None) -> list:
    """The fixes in their order; a run of fixes already listed for one earlier finding becomes one
    pointer to them ("same as fixes 1-4 for divergence above")."""
    items, run = [], None           # run: [symptom, numbers] of consecutive pointers
    for x in f.fixes:
        ref = (earlier or {}).get(_fix_id(x))
        if ref is not None and run is not None and run[0] == ref[0]:
            run[1].append(ref[1])
            continue
        if ref is not None:
            run = [ref[0], [ref[1]]]
            items.append(run)
        else:
            run = None
            items.append(("", _fix(x)))
    out = []
    for item in items:
        if isinstance(item, list):
            sym, nums = item
            which = f"fix {nums[0]}" if len(nums) == 1 else "fixes " + _ranges(nums)
            out.append(("", f"same as {which} for {sym} above"))
        else:
            out.append(item)
    return out


def _ranges(numbers) -> str:
    """1, 2, 3, 5, 8, 9 -> "1–3, 5, 8, 9" (sorted: "fixes 4, 1, 2, 3, 8, 9, 5, 6" read as a puzzle)."""
    nums = sorted(set(numbers))
    parts, start = [], nums[0]
    for prev, n in zip(nums, nums[1:] + [None]):
        if n != prev + 1 if n is not None else True:
            parts.append(str(start) if start == prev else f"{start}–{prev}" if prev > start + 1 else f"{start}, {prev}")
            start = n
    return ", ".join(parts)


def present(f, earlier: dict | None = None) -> FindingView:
    """``earlier``: fix ids already listed in this report ({id: symptom}, ``earlier_fixes``)."""
    layers = [str(x) for x in f.layers]
    more = f" … (+{len(layers) - MAX_LAYERS})" if len(layers) > MAX_LAYERS else ""
    sections = []
    pre = getattr(f, "precursor", None)
    if pre is not None:
        sections.append(Section("Root cause chain", False, [(pre.symptom, chain_text(f))]))
    if f.evidence:
        sections.append(Section("Evidence", False, [
            (ev.series, (f"({ev.layer}) " if ev.layer else "") + ev.text) for ev in f.evidence]))
    if f.causes:
        sections.append(Section("Likely causes", True, [("", _cause(c)) for c in f.causes]))
    if f.fixes:
        sections.append(Section("Fixes, in the order to try them", True, _fix_items(f, earlier)))
    return FindingView(
        severity=str(f.severity), mark=SEVERITY_MARKS.get(f.severity, str(f.severity)),
        color=SEVERITY_COLORS.get(f.severity, NEUTRAL_COLOR), symptom=f.symptom, title=f.title,
        span=step_span(f), layers=f"layers: {', '.join(layers[:MAX_LAYERS])}{more}" if layers else "",
        sections=sections, confirm=getattr(f, "confirm", "") or "",
        first_cause=_cause(f.causes[0]) if f.causes else "", first_fix=_fix(f.fixes[0]) if f.fixes else "",
        chain=f"[{pre.symptom}] {chain_text(f)}" if pre is not None else "")


# ---------------------------------------------------------------- terminal
INDENT = "      "


def text_lines(f, brief: bool = False, earlier: dict | None = None) -> list[str]:
    """Terminal lines. ``brief`` (tail, demo): headline, likely cause and first fix only."""
    v = present(f, earlier)
    head = f"{v.mark} [{v.symptom}] {v.title}" + (f"  ({v.span})" if v.span else "")
    if brief:
        return [head] + ([f"{INDENT}started by: {v.chain}"] if v.chain else []) + \
               ([f"{INDENT}likely cause: {v.first_cause}"] if v.first_cause else []) + \
               ([f"{INDENT}first fix: {v.first_fix}"] if v.first_fix else [])
    out = [head] + ([INDENT + v.layers] if v.layers else [])
    for s in v.sections:
        for i, (code, text) in enumerate(s.items):
            if s.heading == "Root cause chain":
                out.append(f"{INDENT}started by: [{code}] {text}")
            elif s.heading == "Evidence":
                out.append(f"{INDENT}evidence: {text}")
            elif s.heading == "Likely causes":
                out.append(f"{INDENT}{'likely cause' if i == 0 else 'or'}: {text}")
            else:
                out.append(f"{INDENT}fix {i + 1}: {text}")
    if v.confirm:
        out.append(f"{INDENT}confirm: {v.confirm}")
    return out


# ---------------------------------------------------------------- HTML
def e(text) -> str:
    return escape(str(text), quote=True)


def _items(section: Section, code_tag: str) -> str:
    tag = "ol" if section.ordered else "ul"
    items = "".join(f"<li>{f'<{code_tag}>{e(code)}</{code_tag}>: ' if code else ''}{e(text)}</li>"
                    for code, text in section.items)
    return f"<{tag}>{items}</{tag}>"


def web_html(f, anchor: str = "", extra: str = "", earlier: dict | None = None) -> str:
    """A finding as a block of the HTML report (styled by the page's CSS); ``extra``: figures."""
    v = present(f, earlier)
    parts = [f'<div class="finding"{f" id={chr(34)}{e(anchor)}{chr(34)}" if anchor else ""} '
             f'style="border-left-color:{v.color}">',
             f'<div><span class="sev" style="background:{v.color}">{e(v.severity.upper())}</span> '
             f'<span class="symptom">{e(v.symptom)}</span> <span class="muted">{e(v.span)}</span></div>',
             f"<h3>{e(v.title)}</h3>"]
    if v.layers:
        parts.append(f'<div class="muted">{e(v.layers)}</div>')
    parts += [f"<b>{e(s.heading)}</b>{_items(s, 'code')}" for s in v.sections]
    if v.confirm:
        parts.append(f"<div><b>Confirm:</b> {e(v.confirm)}</div>")
    if extra:
        parts.append(extra)
    parts.append("</div>")
    return "\n".join(parts)


def rich_html(f, earlier: dict | None = None) -> str:
    """A finding in Qt's rich-text subset: the advisor panel's details and the PDF."""
    v = present(f, earlier)
    out = [f'<p><span style="background-color:{v.color};color:#fff"><b>&nbsp;{e(v.severity.upper())}&nbsp;</b>'
           f'</span> <tt>{e(v.symptom)}</tt> <font color="#666">{e(v.span)}</font></p>',
           f"<h3>{e(v.title)}</h3>"]
    if v.layers:
        out.append(f'<p><font color="#666">{e(v.layers)}</font></p>')
    out += [f"<p><b>{e(s.heading)}</b></p>{_items(s, 'tt')}" for s in v.sections]
    if v.confirm:
        out.append(f"<p><b>Confirm:</b> {e(v.confirm)}</p>")
    return "".join(out)
