"""Per-parameter weight norms, update norms and update/weight ratios (group ``weights``), every
``stats_every`` steps: the weights are copied before the scheduled optimizer step, and the
update is the difference when the next training forward begins.

The window covers every change of the iteration, not only the watched optimizer's: a second
optimizer (Muon on the matrices and AdamW on the rest, as in modded-nanogpt) may step before or
after it, weight clipping or a projection may follow. Measured at the watched optimizer's own
hooks those updates were 0, and the advisor called the parameters frozen. So the copy is taken
before the first optimizer of the iteration that holds the model's parameters steps
(``other_optimizer_step``, from torch's global step hook) and compared when the next training
forward begins, still before that forward's activations take memory. ``step(closure)`` (LBFGS
runs forwards inside it) is measured after the step; an update no forward followed, at the
next step or at close()."""
from __future__ import annotations

import math

import torch

from .. import format as fmt
from ..device_stats import stat_view, norms
from ..host_stats import WeightCopy, weight_norms
from .base import Record


class Weights(Record):
    group = fmt.WEIGHTS
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.prev = None              # weights copied before a scheduled optimizer step
        self.prev_at = None           # (step, wall) of that step
        self._copy = WeightCopy()     # the CPU fast path's buffer for them, kept between due steps

    def _on_host(self) -> bool:
        return self.w.cpu_fast_path and all(p.is_cpu for p in self.w.params)

    def before_step(self, step, wall, closure):
        if self.prev is not None and self.prev_at[0] == step:
            return                   # copied before another optimizer's step of this iteration
        self._finish()               # no training forward since the last scheduled step
        self._take(step, wall)

    def other_optimizer_step(self, step, wall):
        if self.prev is None:
            self._take(step, wall)

    def _take(self, step, wall):
        if self.due(step) and self.w.params:
            self.prev_at = (step, wall)
            if self._on_host():
                self.prev = self._copy.take(self.w.params)
            else:
                self.prev = torch._foreach_mul([stat_view(p.detach()) for p in self.w.params], 1.0)

    def after_step(self, step, wall, closure):
        if closure:                  # forwards run inside step(closure): measure now
            self._finish()

    def training_forward(self):
        self._finish()

    def _finish(self):
        """Record the update since the copy (see the module docstring)."""
        if self.prev is None:
            return
        prev, self.prev = self.prev, None
        step, wall = self.prev_at
        self.emit(self.compute(prev), step, wall, self.w.P)
        if not self.due(step + 1):
            self._copy.release()      # a copy of every weight is not kept through unscheduled steps

    def at_log(self, step, wall):
        if self.due(step) and self.w.params:
            self.emit(self.compute(None), step, wall, self.w.P)   # no optimizer: no update

    def remove(self):
        self.w.guard(self._finish)    # the run ends: the last scheduled update
        self.prev = None

    def compute(self, prev):
        w = self.w
        # prev is the buffer's views only when before_step took the host path; at_log has none
        host = self._on_host() if prev is None else prev is self._copy.views
        if host:
            rows = weight_norms(w.params, None if prev is None else self._copy.addrs)   # one C pass
            if rows is not None:
                return rows
        current = [stat_view(p.detach()) for p in w.params]
        weight = torch.stack(w.to_one(norms(current)))
        if prev is None:
            update = torch.full_like(weight, math.nan)
        else:
            torch._foreach_sub_(prev, current)           # in place: no second copy of the weights
            update = torch.stack(w.to_one(norms(prev)))
        return torch.cat([weight, update, update / weight])

    def unpack(self, values, arg, step, wall, rows):
        p = arg
        return {"norm": values[:p], "update_norm": values[p:2 * p], "update_ratio": values[2 * p:]}
