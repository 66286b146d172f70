"""32x32 block-averaged snapshots of the weight matrices (group ``snaps``), every
``snapshot_every`` steps; the slots are fixed by the layout (layout.ModelLayout.snap_params).
On the CPU fast path they are averaged on the writer thread from a copy of the weights
(host_copies.py)."""
from __future__ import annotations

import torch

from .. import format as fmt
from ..device_stats import snapshot
from .base import Record
from .host_copies import EMPTY, same_threads


class Snapshots(Record):
    group = fmt.SNAPS
    schedule = "snapshot_every"

    def after_step(self, step, wall, closure):
        slots = self.w.layout.snap_params
        if self.due(step) and slots:
            weights = self.w.copies.weights()
            if weights is not None:   # averaged on the writer
                self.w.link.stage(EMPTY, self, step, wall, (len(slots), weights.hold()))
            else:
                snaps = self.compute(self.w.params)
                self.emit(snaps, step, wall, len(snaps))

    def at_log(self, step, wall):
        self.after_step(step, wall, False)

    def compute(self, params):
        return torch.stack(self.w.to_one([snapshot(params[i]) for i in self.w.layout.snap_params]))

    def discard(self, arg):
        if isinstance(arg, tuple):
            arg[1].release()

    def unpack(self, values, arg, step, wall, rows):
        if isinstance(arg, tuple):    # deferred: (slots, weights copy)
            arg, weights = arg
            try:
                same_threads(weights)
                with torch.no_grad():
                    values = self.compute(weights.tensors()).numpy()
            finally:
                weights.release()
        s = fmt.SNAP_SIZE
        return {"weight": values.reshape(arg, s, s)}
