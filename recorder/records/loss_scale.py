"""A GradScaler's loss scale at every step (``sys/loss_scale``) and the steps it skipped
(``sys/amp_skipped_step`` = 1): with the GradScaler given to watch(..., scaler=) or found
at its first step (amp.py)."""
from __future__ import annotations

from .. import format as fmt
from .scalar import ScalarValues


class LossScale(ScalarValues):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.scaler is not None

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.tag_skipped = watched.link.tag(fmt.SYS_AMP_SKIPPED)
        self.tag_scale = watched.link.tag(fmt.SYS_LOSS_SCALE)

    def before_step(self, step, wall, closure):
        scale = self.w.scaler.scale()
        if scale is None:
            return
        if scale.device.type == "cpu" and self.w.cpu_fast_path:
            self.w.link.host_value(step, self.tag_scale, float(scale), wall)
        else:
            self.emit(scale.detach().clone().reshape(()), step, wall, self.tag_scale)

    def skipped_step(self, step, wall):
        self.w.link.host_value(step, self.tag_skipped, 1.0, wall)
        self.before_step(step, wall, False)
