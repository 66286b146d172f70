"""A sweep's result against one of its settings: the points of the Compare tab's scatter plot
(TensorBoard's HParams scatter view, W&B's "metric vs. hyperparameter" chart), without Qt.

The x axis is a config key whose values are numbers and differ between the runs (the learning
rate first where there is one), the y axis a column of the run table (the validation loss's
best first). A setting spread over decades (learning rates, weight decays) is drawn on a log
axis, where a sweep's points are evenly spaced.
"""
from __future__ import annotations

import math
import re

# Settings a sweep usually varies, tried first for the x axis
_LR = re.compile(r"(^|[/_.\- ])(lr|learning_rate|learning-rate|eta)($|[/_.\- ])", re.IGNORECASE)
PREFERRED_Y = ("val loss best", "val loss last", "train loss end")
LOG_RATIO = 30.0      # x values all > 0 spanning this factor or more get a log axis


def number(text) -> float | None:
    """The config value ``text`` as a finite float, or None (a string, a list, a bool)."""
    if isinstance(text, bool) or text is None:
        return None
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def numeric_keys(rows, keys=None) -> list[str]:
    """Those of ``keys`` (default: every config key, first seen first) whose values are numbers
    in at least two runs, and not all the same."""
    if keys is None:
        keys = dict.fromkeys(k for r in rows for k in r.config)
    out = []
    for k in keys:
        values = [number(r.config.get(k)) for r in rows]
        values = [v for v in values if v is not None]
        if len(values) >= 2 and len(set(values)) > 1:
            out.append(k)
    return out


def default_axes(x_keys, y_titles) -> tuple[str | None, str | None]:
    """The x key and y column shown first: a learning rate and the validation loss where there are."""
    x = next((k for k in x_keys if _LR.search(k)), x_keys[0] if x_keys else None)
    y = next((t for t in PREFERRED_Y if t in y_titles), y_titles[0] if y_titles else None)
    return x, y


def points(rows, x_key: str, y_title: str) -> list[tuple[int, float, float]]:
    """(row index, x, y) of each run that has a number for both."""
    out = []
    for i, r in enumerate(rows):
        x, y = number(r.config.get(x_key)), r.values.get(y_title)
        if x is not None and y is not None and math.isfinite(y):
            out.append((i, x, float(y)))
    return out


def value_ticks(xs, limit: int = 10) -> list | None:
    """The distinct x values as the axis' ticks (a sweep's own settings), or None for the
    axis' own ticks when there are more than ``limit``."""
    distinct = sorted(set(xs))
    return distinct if len(distinct) <= limit else None


def log_axis(xs) -> bool:
    """Draw ``xs`` on a log axis: all positive, spread over ``LOG_RATIO`` or more."""
    xs = list(xs)
    return bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= LOG_RATIO
