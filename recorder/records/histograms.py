"""64-bin histograms of every parameter's weights and gradients over their own [min, max]
(group ``hists``), every ``hist_every`` steps."""
from __future__ import annotations

import torch

from .. import format as fmt
from ..device_stats import histogram
from .base import Record


class Histograms(Record):
    group = fmt.HISTS
    schedule = "hist_every"
    wide = True     # counts beyond 2**24 elements stay exact

    def after_step(self, step, wall, closure):
        if self.due(step) and self.w.params:
            self.emit(self.compute(), step, wall, self.w.P)

    def at_log(self, step, wall):
        self.after_step(step, wall, False)

    def compute(self):
        w = self.w
        device = w.params[0].device
        _, zeros, nan2 = w.const(device)
        wc, wr, gc, gr = [], [], [], []
        for p in w.params:
            c, r = histogram(p, zeros, nan2)
            wc.append(c.to(device, non_blocking=True))
            wr.append(r.to(device, non_blocking=True))
            c, r = histogram(p.grad, zeros, nan2)
            gc.append(c.to(device, non_blocking=True))
            gr.append(r.to(device, non_blocking=True))
        return torch.cat([torch.stack(wc).reshape(-1), torch.stack(wr).reshape(-1),
                          torch.stack(gc).reshape(-1), torch.stack(gr).reshape(-1)])

    def unpack(self, values, arg, step, wall, rows):
        p, b = arg, fmt.HIST_BINS
        wc, wr = values[:p * b], values[p * b:p * b + 2 * p]
        g = values[p * b + 2 * p:]
        gc, gr = g[:p * b], g[p * b:]
        return {"weight_counts": wc.reshape(p, b), "weight_range": wr.reshape(p, 2),
                "grad_counts": gc.reshape(p, b), "grad_range": gr.reshape(p, 2)}
