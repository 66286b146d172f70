"""Runs side by side as a table, one row per run: what a sweep's author asks first ("which
setting trained best?"), as TensorBoard's HParams table and W&B's runs table answer it.

Columns: the config keys that differ between the runs (every key on request), the losses by
role (last value, end level, best), the last value of every other logged metric. The numbers
are the report's (``report.content.run_summary``), so a table and a report never disagree.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from .report.content import flatten, run_summary
from .vocab import Severity, is_sys

MAX_OTHER_METRICS = 24     # logged metrics beyond the losses that get a column (first logged first)
MAX_CONFIG_COLUMNS = 40    # config keys that get a column (a config of 500 keys is not a table)
# Where an imported run came from differs in every run and says nothing of its settings: shown
# with every config key only (the run's tooltip and details name its file).
PROVENANCE_KEYS = frozenset({"imported_from"})
# (column title, run_summary metrics keys: the first present is shown). The training loss's end
# level (median of its last points: one noisy batch is not the result); the validation loss's
# best (what early stopping keeps) and its last value.
LOSS_COLUMNS = (
    ("train loss end", ("train_end", "train_last")),
    ("val loss best", ("val_best",)),
    ("val loss last", ("val_last",)),
)
LOWER_IS_BETTER = frozenset(title for title, _ in LOSS_COLUMNS)


@dataclass
class RunRow:
    name: str
    state: str                                   # RunState value
    steps: int | None
    config: dict = field(default_factory=dict)   # dotted key -> value text
    values: dict = field(default_factory=dict)   # column title -> float
    loss_names: dict = field(default_factory=dict)   # "train"/"val" -> the metric read for that role
    advice: str = ""                             # the advisor's verdict in a few words (advice_text)


def run_row(run) -> RunRow:
    """The row of one open run (``analysis.Run``): reads its losses and its scalar summary."""
    _, metrics = run_summary(run)
    roles = run.loss_roles()
    values = {}
    for title, keys in LOSS_COLUMNS:
        key = next((k for k in keys if k in metrics), None)
        if key is not None:
            values[title] = float(metrics[key])
    summary = run.scalar_summary()
    losses = {roles.get("train"), roles.get("val")}
    others = [(n, last) for n, last, count in zip(summary.names, summary.last, summary.counts)
              if count and not is_sys(n) and n not in losses]
    for name, last in others[:MAX_OTHER_METRICS]:
        values[f"{name} last"] = float(last)
    state = metrics.get("state")
    return RunRow(run.name, getattr(state, "value", str(state or "")), metrics.get("steps"),
                  dict(flatten(run.config)), values,
                  {r: n for r, n in roles.items() if r in ("train", "val") and n})


@dataclass
class Columns:
    config: list        # config keys shown
    values: list        # value column titles shown
    hidden_config: int  # config keys left out (the same in every run, or past MAX_CONFIG_COLUMNS)


def columns(rows: list, every_config_key: bool = False) -> Columns:
    """Config keys that differ between ``rows`` (all keys with ``every_config_key``, or with one
    row), then the losses, then the other metrics, each in first-seen order and capped at
    MAX_CONFIG_COLUMNS and MAX_OTHER_METRICS."""
    keys = list(dict.fromkeys(k for r in rows for k in r.config))
    if every_config_key or len(rows) < 2:
        shown = keys
    else:
        shown = [k for k in keys if k not in PROVENANCE_KEYS and len({r.config.get(k) for r in rows}) > 1]
    shown = shown[:MAX_CONFIG_COLUMNS]
    titles = list(dict.fromkeys(t for r in rows for t in r.values))
    loss_order = [t for t, _ in LOSS_COLUMNS if t in titles]
    others = [t for t in titles if t not in LOWER_IS_BETTER][:MAX_OTHER_METRICS]
    return Columns(shown, loss_order + others, len(keys) - len(shown))


def best_rows(rows: list, title: str) -> set:
    """Indexes of the rows holding the lowest finite value of a loss column (empty otherwise)."""
    if title not in LOWER_IS_BETTER:
        return set()
    finite = [(r.values[title], i) for i, r in enumerate(rows) if math.isfinite(r.values.get(title, math.nan))]
    if not finite:
        return set()
    low = min(v for v, _ in finite)
    return {i for v, i in finite if v == low}


def advice_text(findings, message: str = "") -> tuple[str, int, int]:
    """(a few words, worst severity rank, findings of that rank) of a run's findings: "2 warnings:
    divergence, loss_spikes", "no warnings (1 note)", "no problems found" (rank -1); ``message``
    when the advisor could not run (findings None, rank -2)."""
    if findings is None:
        return message, -2, 0
    if not findings:
        return "no problems found", -1, 0
    ranks = [Severity(f.severity).rank for f in findings]
    worst = max(ranks)
    loud = [f for f, r in zip(findings, ranks) if r == worst]
    if worst == Severity.INFO.rank:
        return f"no warnings ({len(findings)} note{'s' if len(findings) != 1 else ''})", worst, len(findings)
    word = Severity(loud[0].severity).value
    symptoms = ", ".join(dict.fromkeys(f.symptom for f in loud))
    return f"{len(loud)} {word}{'s' if len(loud) != 1 else ''}: {symptoms}", worst, len(loud)


def to_csv(rows: list, cols: Columns) -> str:
    """The table as CSV text (full precision), in the order of ``rows``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    advice = any(r.advice for r in rows)
    w.writerow(["run", "state", "steps", *cols.config, *cols.values, *(["advisor"] if advice else [])])
    for r in rows:
        w.writerow([r.name, r.state, "" if r.steps is None else r.steps, *(r.config.get(k, "") for k in cols.config),
                    *(repr(r.values[t]) if t in r.values else "" for t in cols.values), *([r.advice] if advice else [])])
    return out.getvalue()
