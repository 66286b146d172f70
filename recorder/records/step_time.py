"""Seconds between consecutive optimizer steps on the host clock (``sys/step_time``)."""
from __future__ import annotations

import time

from .. import format as fmt
from .base import Record


class StepTime(Record):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.optimizer is not None

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.tag = watched.link.tag(fmt.SYS_STEP_TIME)
        self.last = None

    def after_step(self, step, wall, closure):
        now = time.perf_counter()
        if self.last is not None:
            self.w.link.host_value(step, self.tag, now - self.last, wall)
        self.last = now
