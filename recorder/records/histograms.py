"""64-bin histograms of every parameter's weights and gradients over their own [min, max]
(group ``hists``), every ``hist_every`` steps."""
from __future__ import annotations

import numpy as np
import torch

from .. import format as fmt
from ..device_stats import fused_histograms
from ..host_stats import Scratch, histograms
from .base import Record


class Histograms(Record):
    group = fmt.HISTS
    schedule = "hist_every"
    wide = True     # counts beyond 2**24 elements stay exact
    first_due = True

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self._scratch = Scratch()     # the CPU fast path's buffers, kept between steps

    def after_step(self, step, wall, closure):
        if self.due(step) and self.w.params:
            self.emit(self.compute(), step, wall, self.w.P)

    def at_log(self, step, wall):
        self.after_step(step, wall, False)

    def compute(self):
        """Counts of the P weights then the P gradients, then their (min, max) ranges."""
        w = self.w
        tensors = list(w.params) + [p.grad for p in w.params]
        if w.cpu_fast_path and all(t is None or t.is_cpu for t in tensors):   # (params are never None)
            counts, ranges = histograms(tensors, self._scratch)
            return np.concatenate([counts.reshape(-1), ranges.reshape(-1)])   # staged as is
        devices = {t.device for t in tensors if t is not None}
        exact = not w.cpu_fast_path or w.params[0].device.type != "cpu"
        if len(devices) <= 1:
            counts, ranges = fused_histograms(tensors, exact)
        else:   # a model spread over devices: one fused pass per device, results on the first
            counts, ranges = [None] * len(tensors), [None] * len(tensors)
            for device in devices:
                idx = [i for i, t in enumerate(tensors) if t is None or t.device == device]
                c, r = fused_histograms([tensors[i] for i in idx], exact)
                for k, i in enumerate(idx):
                    if tensors[i] is not None or counts[i] is None:
                        counts[i], ranges[i] = c[k], r[k]
            counts, ranges = torch.stack(w.to_one(counts)), torch.stack(w.to_one(ranges))
        return torch.cat([counts.reshape(-1).double(), ranges.reshape(-1).double()])

    def unpack(self, values, arg, step, wall, rows):
        p, b = arg, fmt.HIST_BINS
        counts = values[:2 * p * b].reshape(2 * p, b)
        ranges = values[2 * p * b:].reshape(2 * p, 2)
        return {"weight_counts": counts[:p], "weight_range": ranges[:p],
                "grad_counts": counts[p:], "grad_range": ranges[p:]}
