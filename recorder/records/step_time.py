"""Seconds between consecutive optimizer steps on the host clock (``sys/step_time``); with a
model watched without an optimizer (a hand-written update), between the iterations' first
``log()`` calls, which end its steps: a step time growing with the step (an LSTM's hidden state
never detached, backward through every earlier iteration) is seen there too (trial 18 U7)."""
from __future__ import annotations

import time

from .. import format as fmt
from .base import Record


class StepTime(Record):
    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.tag = watched.link.tag(fmt.SYS_STEP_TIME)
        self.last = None

    def after_step(self, step, wall, closure):
        now = time.perf_counter()
        if self.last is not None:
            self.w.link.host_value(step, self.tag, now - self.last, wall)
        self.last = now

    def at_log(self, step, wall):
        self.after_step(step, wall, False)
