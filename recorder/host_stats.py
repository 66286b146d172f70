"""The CPU fast path of the statistics: CPU tensors read through numpy views, results as host numbers.

Reading a CPU tensor costs no device synchronisation, and numpy's comparisons and counts are
~5x faster than torch's bool ops (measured: ``count_nonzero(x <= 0)`` 4 us against torch's 23 us
for 16 k floats), so on the CPU the dozen small torch ops per statistic become a few numpy
passes and Python floats. The values equal the device path's (``device_stats``), which the GPU
and ``Recorder(_device_path=True)`` use; tests compare both.

numpy only runs element-wise kernels and reductions here (one thread, like ``torch.set_num_threads(1)``);
dot products stay with torch, whose thread pool the user controls (numpy's BLAS may start its own).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .device_stats import SAT_THRESHOLD, saturation_band, unit_dim


def activation_row(x, bounds) -> list:
    """format.ACT_FIELDS of one CPU module output ``x`` (a ``device_stats.output_tensor``) as 6
    Python floats, computed at once, so an in-place module after this one (``ReLU(inplace=True)``)
    cannot change them. The range decides counts it implies (no element <= 0 when the minimum
    is > 0, none beyond the saturation thresholds when the range is inside them): a pass over
    the data each that NaN ranges never skip."""
    flat = x.reshape(-1)
    a = flat.numpy()
    n = a.size
    with np.errstate(all="ignore"):       # NaN/Inf activations are data, not warnings
        lo, hi = float(a.min()), float(a.max())
        mean = flat.mean()
        centred = flat - mean             # two passes, as on the device
        std = math.sqrt(float(torch.dot(centred, centred)) / n)
        nonpos = 0 if lo > 0 else n if hi <= 0 else np.count_nonzero(a <= 0)
        if x.dim() == 0:
            dead = math.nan
        elif lo > 0:
            dead = 0.0
        else:
            unit = unit_dim(x.dim())
            others = tuple(d for d in range(x.dim()) if d != unit)
            per_unit = (x.amax(dim=others) if others else x).numpy()
            dead = np.count_nonzero(per_unit <= 0) / per_unit.size
        if bounds is not None:
            low, high = (np.float32(b) for b in saturation_band(bounds))   # compared as float32, as torch does
            if lo > low and hi < high:
                sat = 0
            else:   # the bands are disjoint (1 % each side): the two counts add up to their union
                sat = np.count_nonzero(a <= low) + np.count_nonzero(a >= high)
        elif -SAT_THRESHOLD <= lo and hi <= SAT_THRESHOLD:
            sat = 0
        else:
            sat = np.count_nonzero(np.abs(a) > np.float32(SAT_THRESHOLD))
    absmax = max(-lo, hi) if hi == hi else math.nan   # NaN anywhere: NaN min and max
    return [float(mean), std, absmax, nonpos / n, float(dead), sat / n]
