"""Seconds from an optimizer step's end to the next step's first training forward
(``sys/data_wait``): the data loader's wait, plus ``zero_grad()`` and the user's code between.
Host clock only (no device sync). In a DDP job the rank with the long wait is the one the
others wait for at the gradient all-reduce (their step times all match its own)."""
from __future__ import annotations

import time

from .. import format as fmt
from .base import Record


class DataWait(Record):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.optimizer is not None

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.tag = watched.link.tag(fmt.SYS_DATA_WAIT)
        self.step_end = None

    def after_step(self, step, wall, closure):
        self.step_end = time.perf_counter()

    def forward_start(self, step, args, kwargs):
        if self.step_end is not None:   # the first forward after a step (accumulation: once)
            link = self.w.link
            link.host_value_or_hold(step, self.tag, time.perf_counter() - self.step_end, time.time())
            if link.held is None:   # held (a GAN's netD(fake)): a fresh forward may measure again
                self.step_end = None
