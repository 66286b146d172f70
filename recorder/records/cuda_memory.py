"""CUDA memory allocated and its peak, in bytes, after every optimizer step
(``sys/cuda_mem_allocated``, ``sys/cuda_mem_peak``); models with a parameter on a CUDA device."""
from __future__ import annotations

import torch

from .. import format as fmt
from .base import Record


class CudaMemory(Record):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.optimizer is not None and any(p.device.type == "cuda" for p in watched.params)

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.device = next(p.device for p in watched.params if p.device.type == "cuda")
        tag = watched.link.tag
        self.tags = (tag(fmt.SYS_CUDA_ALLOC), tag(fmt.SYS_CUDA_PEAK))

    def after_step(self, step, wall, closure):
        host_value = self.w.link.host_value
        # host counters of the caching allocator: no device synchronisation
        host_value(step, self.tags[0], float(torch.cuda.memory_allocated(self.device)), wall)
        host_value(step, self.tags[1], float(torch.cuda.max_memory_allocated(self.device)), wall)
