"""Mean, std, min and max of the model's first floating-point input tensor, as the scalars
``sys/input_*``, and the first dimension and the number of elements of its first tensor input
(``sys/batch_size``, ``sys/input_numel``), from the first training-mode forward of every
``stats_every``-th step."""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import format as fmt
from ..device_stats import input_stats, plain_values
from ..host_stats import input_row
from .scalar import ScalarValues


def first_input(args, kwargs):
    """The model's first tensor input as a plain, non-empty tensor, or None. An input this cannot
    read (a MaskedTensor or nested batch, a wrapper whose attributes raise) is not measured: a
    failure here would switch every per-layer instrument off (guard), for a missing value."""
    try:
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if x is not None:
            x = plain_values(x)      # a MaskedTensor/DTensor batch: its shard, or not measured
        return None if x is None or x.numel() == 0 else x
    except Exception:  # noqa: BLE001 - a hostile input is a missing value, never a failed step
        return None


class InputStats(ScalarValues):
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        tag = watched.link.tag
        self.tags = tuple(tag(n) for n in (fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD,
                                           fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX))
        # the advisor compares a loss with the batch size: a cross-entropy summed over the batch
        self.batch_tag = tag(fmt.SYS_BATCH_SIZE)
        # ... or summed over every token of a (B, T) batch of ids: their count, B*T in either layout
        self.numel_tag = tag(fmt.SYS_INPUT_NUMEL)
        # an unbatched 1-D input to a first Linear of as many in_features is one sample (an RL
        # policy fed one state per forward, as pytorch/examples' actor_critic does), not a batch
        # of that many: its batch size read as the observation's length (trial 18 U4)
        first = next((m for m in watched.model.modules() if isinstance(m, torch.nn.Linear)), None)
        self.in_features = getattr(first, "in_features", None)

    def forward_start(self, step, args, kwargs):
        x = first_input(args, kwargs)
        if x is None:
            return
        wall = time.time()
        if x.dim():      # the shape is host metadata: no device work (token ids count too)
            one = x.dim() == 1 and x.is_floating_point() and x.shape[0] == self.in_features
            self.w.link.host_value_or_hold(step, self.batch_tag, 1.0 if one else float(x.shape[0]), wall)
            self.w.link.host_value_or_hold(step, self.numel_tag, float(x.numel()), wall)
        if x.is_floating_point() and not x.is_meta:     # a meta tensor holds no values to measure
            self.emit(self.compute(x), step, wall, self.tags)

    def compute(self, x):
        if self.w.cpu_fast_path and x.is_cpu and x.layout is torch.strided:
            return np.array(input_row(x), np.float32)   # staged as is
        return input_stats(x)
