"""Runs side by side as a table, one row per run: what a sweep's author asks first ("which
setting trained best?"), as TensorBoard's HParams table and W&B's runs table answer it.

Columns: the config keys that differ between the runs (every key on request), the losses by
role (last value, end level, best), the last value of every other logged metric, and its best
value where its name says which way is better (``better``: val/acc at its highest). The numbers
are the report's (``report.content.run_summary``), so a table and a report never disagree.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .report.content import IMPORTED_KEY, flatten, run_summary
from .report.csv_export import text_cell, value_cell
from .vocab import Severity, is_sys

MAX_OTHER_METRICS = 24     # logged metrics beyond the losses that get a column (first logged first)
MAX_CONFIG_COLUMNS = 40    # config keys that get a column (a config of 500 keys is not a table)
# Where an imported run came from differs in every run and says nothing of its settings: shown
# with every config key only (the run's tooltip and details name its file).
PROVENANCE_KEYS = frozenset({IMPORTED_KEY})
# (column title, run_summary metrics keys: the first present is shown). The training loss's end
# level (median of its last points: one noisy batch is not the result); the validation loss's
# best (what early stopping keeps) and its last value.
LOSS_COLUMNS = (
    ("train loss end", ("train_end", "train_last")),
    ("val loss best", ("val_best",)),
    ("val loss last", ("val_last",)),
)
LOWER_IS_BETTER = frozenset(title for title, _ in LOSS_COLUMNS)
# A logged metric whose name says which way is better gets a "best" column too (its whole series
# is read): accuracy-like scores are best at their highest, error-like ones at their lowest.
_HIGHER = re.compile(r"(^|[/_.\- ])(acc|accuracy|top1|top5|f1|auc|auroc|precision|recall|bleu|rouge\w*|map|miou|"
                     r"iou|dice|r2|score)($|[/_.\-@ ])", re.IGNORECASE)
_LOWER = re.compile(r"(^|[/_.\- ])(loss|error|err|perplexity|ppl|mse|mae|rmse|wer|cer|nll)($|[/_.\-@ ])",
                    re.IGNORECASE)


def better(name: str) -> str | None:
    """"max" for a metric whose name reads as a score (val/acc, f1, bleu), "min" for one that
    reads as an error (val/error, eval/perplexity), None when the name does not say."""
    if _LOWER.search(name):
        return "min"
    if _HIGHER.search(name):
        return "max"
    return None


def column_better(title: str) -> str | None:
    """Which way is better in a column: the losses' columns, and a metric's "best" column."""
    if title in LOWER_IS_BETTER:
        return "min"
    return better(title[:-len(" best")]) if title.endswith(" best") else None


@dataclass
class RunRow:
    name: str
    state: str                                   # RunState value
    steps: int | None
    config: dict = field(default_factory=dict)   # dotted key -> value text
    values: dict = field(default_factory=dict)   # column title -> float
    loss_names: dict = field(default_factory=dict)   # "train"/"val" -> the metric read for that role
    advice: str = ""                             # the advisor's verdict in a few words (advice_text)
    path: str = ""                               # the run's file (tells rows of the same name apart)


def loss_values(metrics: dict) -> dict:
    """The loss columns (LOSS_COLUMNS) of a run's ``run_summary`` metrics that it has."""
    values = {}
    for title, keys in LOSS_COLUMNS:
        key = next((k for k in keys if k in metrics), None)
        if key is not None:
            values[title] = float(metrics[key])
    return values


def run_row(run) -> RunRow:
    """The row of one open run (``analysis.Run``): reads its losses and its scalar summary."""
    _, metrics = run_summary(run)
    roles = run.loss_roles()
    values = loss_values(metrics)
    summary = run.scalar_summary()
    losses = {roles.get("train"), roles.get("val")}
    others = [(n, last) for n, last, count in zip(summary.names, summary.last, summary.counts)
              if count and not is_sys(n) and n not in losses]
    for name, last in others[:MAX_OTHER_METRICS]:
        way = better(name)
        if way is not None:
            v = np.asarray(run.scalar(name).values, dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                values[f"{name} best"] = float(v.max() if way == "max" else v.min())
        values[f"{name} last"] = float(last)
    state = metrics.get("state")
    return RunRow(run.name, getattr(state, "value", str(state or "")), metrics.get("steps"),
                  dict(flatten(run.config)), values,
                  {r: n for r, n in roles.items() if r in ("train", "val") and n}, path=str(run.path))


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
    if len(shown) > MAX_CONFIG_COLUMNS:
        # the keys set in the most runs, in first-seen order: two HF runs' 45 training_args keys,
        # read first, pushed a sweep's lr past the limit
        presence = {k: sum(k in r.config for r in rows) for k in shown}
        kept = set(sorted(shown, key=lambda k: -presence[k])[:MAX_CONFIG_COLUMNS])
        shown = [k for k in shown if k in kept]
    titles = list(dict.fromkeys(t for r in rows for t in r.values))
    # A metric's best column that equals its last one in every run says nothing more (a final
    # result logged once, such as add_hparams' hparam/accuracy): left out.
    titles = [t for t in titles if not (t.endswith(" best") and t not in LOWER_IS_BETTER
                                        and all(r.values.get(t) == r.values.get(f"{t[:-len(' best')]} last")
                                                for r in rows))]
    loss_order = [t for t, _ in LOSS_COLUMNS if t in titles]
    others = [t for t in titles if t not in LOWER_IS_BETTER][:MAX_OTHER_METRICS]
    return Columns(shown, loss_order + others, len(keys) - len(shown))


def best_rows(rows: list, title: str) -> set:
    """Indexes of the rows holding the best finite value of a column whose better way is known
    (the lowest loss, the highest accuracy); empty otherwise."""
    way = column_better(title)
    if way is None:
        return set()
    finite = [(r.values[title], i) for i, r in enumerate(rows) if math.isfinite(r.values.get(title, math.nan))]
    if not finite:
        return set()
    top = (max if way == "max" else min)(v for v, _ in finite)
    return {i for v, i in finite if v == top}


def sort_key(value):
    """How a cell sorts: numbers as numbers (1e-4 before 0.001, also when given as text), then
    text; None for a blank, NaN or inf (the table and ``compare --sort`` put those last)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return (1, 0.0, value) if value not in ("", "-", "–") else None
    value = float(value)
    return (0, value, "") if math.isfinite(value) else None


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
    # rows of one run name (a script run twice on one path: x.h5, x-2.h5) get their files
    files = len({r.name for r in rows}) < len(rows) and all(r.path for r in rows)
    # Names, settings and their keys come from whoever wrote the runs: none may run as a formula
    # when the file is opened in a spreadsheet (csv_export's text_cell).
    w.writerow(["run", *(["file"] if files else []), "state", "steps", *map(text_cell, cols.config),
                *map(text_cell, cols.values), *(["advisor"] if advice else [])])
    for r in rows:
        w.writerow([text_cell(r.name), *([text_cell(r.path)] if files else []), r.state,
                    "" if r.steps is None else r.steps,
                    *(value_cell(r.config.get(k, "")) for k in cols.config),
                    *(repr(r.values[t]) if t in r.values else "" for t in cols.values),
                    *([text_cell(r.advice)] if advice else [])])
    return out.getvalue()


def row_labels(rows) -> list:
    """The run column: each run's name, and its file where rows share a name (a script run
    twice on one path records to x-2.h5 under the same name: two rows read `pl_none`)."""
    from collections import Counter
    from pathlib import Path

    names = Counter(r.name for r in rows)
    files = Counter(Path(r.path).name for r in rows if r.path)
    out = []
    for r in rows:
        if names[r.name] < 2 or not r.path:
            out.append(r.name)
            continue
        file = Path(r.path).name if files[Path(r.path).name] < 2 else r.path
        out.append(f"{r.name} ({file})")
    return out
