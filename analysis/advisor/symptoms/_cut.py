"""Rows of a run's tables before its first non-finite step: the rest says nothing about training."""
from __future__ import annotations

import numpy as np


def rows_before(steps, nan_step) -> int:
    if nan_step is None:
        return len(steps)
    return int(np.searchsorted(np.asarray(steps), nan_step, side="left"))


def shapes_of(sig, layers):
    by_name = {p.name: p for p in sig.params}
    shapes = [tuple(by_name[n].shape) if n in by_name else () for n in layers]
    numel = [int(by_name[n].numel) if n in by_name else 1 for n in layers]
    return shapes, numel


def types_of(sig, names):
    by = {m.name: m.type for m in sig.modules}
    return [by.get(n, "") for n in names]
