"""32x32 block-averaged snapshots of the weight matrices (group ``snaps``), every
``snapshot_every`` steps; the slots are fixed by the layout (layout.ModelLayout.snap_params)."""
from __future__ import annotations

import torch

from .. import format as fmt
from ..device_stats import snapshot
from ..host_stats import snapshots
from .base import Record


class Snapshots(Record):
    group = fmt.SNAPS
    schedule = "snapshot_every"
    first_due = True

    def after_step(self, step, wall, closure):
        if self.due(step) and self.w.layout.snap_params:
            snaps = self.compute()
            self.emit(snaps, step, wall, len(snaps))

    def at_log(self, step, wall):
        self.after_step(step, wall, False)

    def compute(self):
        params = self.w.params
        if self.w.cpu_fast_path and all(params[i].is_cpu for i in self.w.layout.snap_params):
            pooled = snapshots([params[i] for i in self.w.layout.snap_params])   # one C call
            if pooled is not None:
                return pooled
        return torch.stack(self.w.to_one([snapshot(params[i]) for i in self.w.layout.snap_params]))

    def unpack(self, values, arg, step, wall, rows):
        s = fmt.SNAP_SIZE
        return {"weight": values.reshape(arg, s, s)}
