"""Per-parameter weight norms, update norms and update/weight ratios (group ``weights``), every
``stats_every`` steps: the weights are copied before the scheduled optimizer step, and the
update is the difference after it. On the CPU fast path the copies go to the writer thread,
which computes the norms (host_copies.py)."""
from __future__ import annotations

import math

import torch

from .. import format as fmt
from ..device_stats import local_shard, norms
from .base import Record
from .host_copies import EMPTY, HostCopy, copy_tensors, release_all, same_threads


class Weights(Record):
    group = fmt.WEIGHTS
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.prev = None              # weights copied before a scheduled optimizer step (or a HostCopy)

    def before_step(self, step, wall, closure):
        if self.due(step) and self.w.params:
            self.remove()             # a copy whose step never ended (the optimizer raised)
            w = self.w
            if w.copies.weights_ok():
                self.prev = copy_tensors(w.pool, w.params)
            if self.prev is None:
                self.prev = torch._foreach_mul([local_shard(p.detach()) for p in w.params], 1.0)

    def after_step(self, step, wall, closure):
        if self.prev is not None:
            prev, self.prev = self.prev, None
            if type(prev) is HostCopy:
                self._emit_deferred(prev, step, wall)
            else:
                self.emit(self.compute(prev), step, wall, self.w.P)

    def at_log(self, step, wall):
        if self.due(step) and self.w.params:
            self._emit_deferred(None, step, wall)   # no optimizer: no update

    def _emit_deferred(self, prev, step, wall):
        """Stage the copies for the writer, or compute now if the current weights have none."""
        current = self.w.copies.weights()
        if current is not None:
            self.w.link.stage(EMPTY, self, step, wall, (self.w.P, prev, current.hold()))
            return
        try:
            self.emit(self.compute(None if prev is None else prev.tensors()), step, wall, self.w.P)
        finally:
            release_all(prev)

    def remove(self):
        prev, self.prev = self.prev, None
        if type(prev) is HostCopy:
            prev.release()

    def compute(self, prev, current=None):
        w = self.w
        if current is None:
            current = [local_shard(p.detach()) for p in w.params]
        weight = torch.stack(w.to_one(norms(current)))
        if prev is None:
            update = torch.full_like(weight, math.nan)
        else:
            torch._foreach_sub_(prev, current)           # in place: no second copy of the weights
            update = torch.stack(w.to_one(norms(prev)))
        return torch.cat([weight, update, update / weight])

    def discard(self, arg):
        if isinstance(arg, tuple):
            release_all(*arg[1:])

    def unpack(self, values, arg, step, wall, rows):
        if isinstance(arg, tuple):    # deferred: (P, weights before the step or None, weights after)
            arg, prev, current = arg
            try:
                same_threads(current)
                with torch.no_grad():
                    values = self.compute(None if prev is None else prev.tensors(), current.tensors()).numpy()
            finally:
                release_all(prev, current)
        p = arg
        return {"norm": values[:p], "update_norm": values[p:2 * p], "update_ratio": values[2 * p:]}
