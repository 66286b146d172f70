"""Per-parameter weight norms, update norms and update/weight ratios (group ``weights``), every
``stats_every`` steps: the weights are copied before the scheduled optimizer step, and the
update is the difference after it, or, once another optimizer was seen stepping the model's
parameters, when the next training forward begins.

That window covers every change of the iteration, not only the watched optimizer's: a second
optimizer (Muon on the matrices and AdamW on the rest, as in modded-nanogpt) may step before or
after it (and weight clipping may follow). Measured at the watched optimizer's own hooks, the
other's updates were 0, and the advisor called its parameters frozen. So the copy is taken
before the first optimizer of the iteration that holds the model's parameters steps
(``other_optimizer_step``, from torch's global step hook) and compared when the next training
forward begins, still before that forward's activations take memory. ``step(closure)`` (LBFGS
runs forwards inside it) is measured after the step; an update no forward followed, at the
next step, flush() or close().

Parameters that do not train (``requires_grad=False``: a frozen backbone under LoRA) are not
copied: a copy of a 7B base at each scheduled step is gigabytes on the GPU. Their version
counter tells whether anything changed them in place (its update is then NaN once, and they are
copied from then on: a BYOL/DINO teacher moved by EMA); unchanged, their update is exactly 0."""
from __future__ import annotations

import math

import numpy as np
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
        self._kept = None             # indices of the copied parameters (None: all)
        self._versions = None         # the others' version counters at the copy
        self._edited = set()          # frozen parameters seen changed in place: copied from then on
        # Trainable parameters outside the watched optimizer: another optimizer may step them after
        # the watched one (Muon on the matrices, AdamW after it on the rest), before torch's global
        # hook has shown it: measured at the next training forward from the first step, or its
        # update read 0 at step 0 (taken for "frozen")
        optimized = watched.layout.optimized
        self._others_may_step = optimized is not None and any(
            p.requires_grad and id(p) not in optimized for p in watched.params)

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
        params = self.w.params
        if not (self.due(step) and params):
            return
        self.prev_at = (step, wall)
        kept = None
        if not all(p.requires_grad for p in params):
            kept = [i for i, p in enumerate(params) if p.requires_grad or i in self._edited]
            skipped = set(range(len(params))).difference(kept)
            self._versions = {i: params[i]._version for i in skipped}
        self._kept = kept
        copied = params if kept is None else [params[i] for i in kept]
        if self._on_host():
            self.prev = self._copy.take(copied)
        else:
            self.prev = torch._foreach_mul([stat_view(p.detach()) for p in copied], 1.0)

    def after_step(self, step, wall, closure):
        # Measured now unless another optimizer steps this model's parameters (then at the
        # next training forward): step(closure) runs its forwards inside, and a plain loop has
        # nothing more to wait for (its record is written without waiting for a next step).
        if closure or not (self.w.other_optimizers or self._others_may_step):
            self._finish()

    def training_forward(self):
        if self.prev is not None:     # every forward: nothing to do in a one-optimizer loop
            self.w.guard(self._finish)

    def flush(self):
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

    def release(self):
        # the copy of every weight is the size of the model: not to be held past an instrument
        # that ran out of memory
        self.prev = None
        self._copy.release()

    def _uncopied(self) -> dict:
        """Parameter index -> its update (0.0, or NaN when changed in place) for those not copied."""
        if self._kept is None:
            return {}
        params, out = self.w.params, {}
        for i, version in self._versions.items():
            if params[i]._version == version:
                out[i] = 0.0
            else:
                out[i] = math.nan
                self._edited.add(i)
        return out

    def compute(self, prev):
        w = self.w
        P = w.P
        kept = self._kept if prev is not None else None
        uncopied = self._uncopied() if prev is not None else {}
        # prev is the buffer's views only when before_step took the host path; at_log has none
        host = self._on_host() if prev is None else prev is self._copy.views
        if host:
            addrs = None if prev is None else self._copy.addrs
            if kept is not None:                 # address 0: no copy (update NaN, set below)
                addrs = np.zeros(P, np.int64)
                addrs[kept] = self._copy.addrs
            rows = weight_norms(w.params, addrs)   # one C pass
            if rows is not None:
                for i, u in uncopied.items():
                    rows[P + i], rows[2 * P + i] = u, u / rows[i] if rows[i] else u
                return rows
        current = [stat_view(p.detach()) for p in w.params]
        weight = torch.stack(w.to_one(norms(current)))
        if prev is None:
            update = torch.full_like(weight, math.nan)
        else:
            rows = current if kept is None else [current[i] for i in kept]
            torch._foreach_sub_(prev, rows)              # in place: no second copy of the weights
            found = w.to_one(norms(prev))
            if kept is not None:
                full = [None] * P
                for i, u in zip(kept, found):
                    full[i] = u
                nan, zero = w.const(weight.device)[0], weight.new_zeros(())
                for i, u in uncopied.items():
                    full[i] = zero if u == 0.0 else nan
                found = full
            update = torch.stack(found)
        return torch.cat([weight, update, update / weight])

    def unpack(self, values, arg, step, wall, rows):
        p = arg
        return {"norm": values[:p], "update_norm": values[p:2 * p], "update_ratio": values[2 * p:]}
