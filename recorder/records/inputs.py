"""Mean, std, min and max of the model's first floating-point input tensor, as the scalars
``sys/input_*``, from the first training-mode forward of every ``stats_every``-th step.

On the CPU fast path a float32 contiguous input is copied (deferred.Copies, at its address
modulo ALIGN: the same sums) and the writer thread computes its row in ``unpack``; others,
or when the pool refuses, are computed at once as before."""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import format as fmt
from ..deferred import ALIGN, Copies
from ..device_stats import input_stats
from ..host_stats import input_row
from .host_copies import EMPTY, same_threads
from .scalar import ScalarValues


class _InputCopy:
    """The input copied for the writer, and the training thread's torch thread count."""
    __slots__ = ("copies", "a", "threads")

    def __init__(self, copies, a, threads):
        self.copies, self.a, self.threads = copies, a, threads


class InputStats(ScalarValues):
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        tag = watched.link.tag
        self.tags = tuple(tag(n) for n in (fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD,
                                           fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX))

    def forward_start(self, step, args, kwargs):
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if x is not None and x.is_floating_point() and x.numel() > 0:
            copy = self._copy(x) if self.w.cpu_fast_path and x.device.type == "cpu" else None
            if copy is not None:
                self.emit(EMPTY, step, time.time(), copy)
            else:
                self.emit(self.compute(x), step, time.time(), self.tags)

    def _copy(self, x):
        """input_row's ``reshape(-1)`` of a plain float32 contiguous tensor, copied, or None."""
        if x.dtype != torch.float32 or x.layout != torch.strided or not x.is_contiguous():
            return None
        copies = Copies(self.w.pool)
        a = copies.copy(x.detach().numpy(), x.data_ptr() % ALIGN)
        return None if a is None else _InputCopy(copies, a, torch.get_num_threads())

    def compute(self, x):
        if self.w.cpu_fast_path and x.device.type == "cpu":
            return torch.from_numpy(np.array(input_row(x), np.float32))
        return input_stats(x)

    def discard(self, arg):
        if type(arg) is _InputCopy:
            arg.copies.release()

    def unpack(self, values, arg, step, wall, rows):
        if type(arg) is _InputCopy:    # the writer computes the copied input's row
            try:
                same_threads(arg)
                values = np.array(input_row(torch.from_numpy(arg.a)), np.float32)
            finally:
                arg.copies.release()
            arg = self.tags
        return super().unpack(values, arg, step, wall, rows)
