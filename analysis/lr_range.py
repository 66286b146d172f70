"""Read an LR range test run (``trainspect.lr_range_test``): loss against LR and the suggestion.

The sweep is a normal run file; what marks it, and the names of its metrics, are in
recorder/format.py (``LR_RANGE_*``). The app plots ``LRSweep`` as loss against LR on a log x axis
with the suggestion marked; the advisor quotes ``suggested`` in its LR fixes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainspect.recorder import format as fmt


@dataclass
class LRSweep:
    name: str
    lr: np.ndarray              # LR of each sweep step (param group 0)
    loss: np.ndarray            # raw training loss at that step
    smoothed: np.ndarray        # the recorder's smoothed loss (NaN where absent)
    suggested: float | None
    steepest: float | None
    min_loss_lr: float | None

    @property
    def reason(self) -> str:
        if self.suggested is None:
            return "the sweep gave no suggestion (the loss never fell clearly)"
        if self.steepest is not None and abs(self.suggested - self.steepest) <= 1e-12 * self.steepest:
            return (f"steepest descent of the smoothed loss at LR {self.suggested:.3g}"
                    + (f" (loss minimum at LR {self.min_loss_lr:.3g})" if self.min_loss_lr else ""))
        return (f"the smoothed loss was lowest at LR {self.min_loss_lr:.3g}; one tenth of that"
                + (f" (steepest descent at LR {self.steepest:.3g})" if self.steepest else ""))


def is_sweep(run) -> bool:
    config = getattr(run, "config", None) or {}
    return isinstance(config, dict) and fmt.LR_RANGE_CONFIG in config


def _last(run, names, name):
    if name not in names:
        return None
    v = np.asarray(run.scalar(name).values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(v[-1]) if v.size else None


def read_sweep(run) -> LRSweep | None:
    """The sweep in ``run`` (loss aligned to the LR of the same step), or None if it is not one."""
    if not is_sweep(run):
        return None
    names = set(run.scalar_names())
    if fmt.SYS_LR not in names or "train/loss" not in names:
        return None
    lr, loss = run.scalar(fmt.SYS_LR), run.scalar("train/loss")
    steps = np.intersect1d(np.asarray(lr.steps), np.asarray(loss.steps))

    def at(series):
        s, v = np.asarray(series.steps), np.asarray(series.values, dtype=np.float64)
        _, first = np.unique(s, return_index=True)      # one value per step
        s, v = s[first], v[first]
        return v[np.searchsorted(s, steps)]

    smoothed = (at(run.scalar(fmt.LR_RANGE_SMOOTHED)) if fmt.LR_RANGE_SMOOTHED in names
                else np.full(len(steps), np.nan))
    return LRSweep(name=getattr(run, "name", ""), lr=at(lr), loss=at(loss), smoothed=smoothed,
                   suggested=_last(run, names, fmt.LR_RANGE_SUGGESTED),
                   steepest=_last(run, names, fmt.LR_RANGE_STEEPEST),
                   min_loss_lr=_last(run, names, fmt.LR_RANGE_MIN_LOSS))


def open_sweep(path) -> LRSweep | None:
    from .run import open_run
    with open_run(path) as run:
        return read_sweep(run)
