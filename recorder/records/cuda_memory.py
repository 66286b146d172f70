"""CUDA memory allocated and its peak, in bytes, after optimizer steps (``sys/cuda_mem_allocated``,
``sys/cuda_mem_peak``); models with a parameter on a CUDA device.

Read after every step that ends at least ``SAMPLE_INTERVAL`` seconds after the last read: each
read builds the allocator's statistics dict on the host (measured on an H200 machine: ~0.3 ms,
13 % of a 2.3 ms launch-bound MLP step), so a fast loop gets ~10 reads a second and a step of
0.1 s or more gets one each. The peak is the allocator's running maximum: a peak between two
reads shows at the next one."""
from __future__ import annotations

import torch

from .. import format as fmt
from .base import Record


def allocated_bytes(device) -> tuple[float, float]:
    """``torch.cuda.memory_allocated`` and ``max_memory_allocated`` from one read of the
    caching allocator's host counters (no device synchronisation). Each of those two flattens
    the allocator's whole nested statistics dict first: ~160 Python calls, measured 0.5 ms a
    step of cProfile'd host time on an H200 machine, where a launch-bound step is 3 ms."""
    counts = torch.cuda.memory_stats_as_nested_dict(device).get("allocated_bytes", {}).get("all", {})
    return float(counts.get("current", 0)), float(counts.get("peak", 0))


SAMPLE_INTERVAL = 0.1   # seconds of wall time between reads, at most


class CudaMemory(Record):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.optimizer is not None and any(p.device.type == "cuda" for p in watched.params)

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.device = next(p.device for p in watched.params if p.device.type == "cuda")
        tag = watched.link.tag
        self.tags = (tag(fmt.SYS_CUDA_ALLOC), tag(fmt.SYS_CUDA_PEAK))
        self.last_read = None

    def after_step(self, step, wall, closure):
        last = self.last_read
        if last is not None and last <= wall < last + SAMPLE_INTERVAL:   # a clock set back: read
            return
        self.last_read = wall
        current, peak = allocated_bytes(self.device)
        host_value = self.w.link.host_value
        host_value(step, self.tags[0], current, wall)
        host_value(step, self.tags[1], peak, wall)
