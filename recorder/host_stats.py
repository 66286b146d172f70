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

from . import format as fmt
from .device_stats import SAT_THRESHOLD, dense_values, local_shard, saturation_band, size_chunks, unit_dim

TINY = np.finfo(np.float32).tiny


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


HOST_CHUNK = 1 << 20    # elements binned at once; the buffers of a chunk are kept between calls


class Scratch:
    """Arrays kept between calls. A fresh megabyte-sized temporary costs a page fault per 4 kB
    each time, since glibc hands freed memory of that size back to the system (measured on the
    MLP's histograms: 621 faults a call, ~2 ms of a step on a loaded machine)."""

    def __init__(self, limit: int = HOST_CHUNK):
        self.limit = limit           # larger requests get a temporary array, not kept
        self.arrays = {}
        self.offsets = {}            # (tensor indices, sizes) of a chunk -> its per-element bin offsets

    def array(self, name: str, dtype, n: int):
        if n > self.limit:
            return np.empty(n, dtype)
        a = self.arrays.get(name)
        if a is None or a.size < n:
            a = self.arrays[name] = np.empty(n, dtype)
        return a[:n]

    def bin_offsets(self, chunk, sizes, slots: int):
        """``slots`` x the tensor index of every element of a chunk, as int32."""
        key = (tuple(chunk), tuple(sizes))
        a = self.offsets.get(key)
        if a is None:
            if len(self.offsets) > 64:   # the gradients present changed many times: start over
                self.offsets.clear()
            a = self.offsets[key] = np.repeat(np.asarray(chunk, np.int32) * slots, sizes)
        return a


def histograms(tensors, scratch: Scratch | None = None):
    """``device_stats.fused_histograms`` of CPU tensors: float64 numpy counts ``(n, 64)`` and
    ranges ``(n, 2)``, the same values (the bins of torch.histc over each tensor's range).

    The ranges are known on the host before binning, which saves the device path's passes
    that keep NaN out of the bins: a tensor with a finite range has no NaN/Inf values, and is
    binned with one subtraction and one division (by (max - min) / 64, a power-of-two scaling
    of the device path's division then multiplication by 64: the same bins) in one float32
    buffer, integer offsets and one bincount. The rare others (NaN/Inf values, a range below
    64 x the smallest normal float) take the per-tensor reference computation, constants
    (all in bin 0) excepted. ``scratch``: buffers reused from the previous call."""
    scratch = scratch or Scratch()
    bins, n = fmt.HIST_BINS, len(tensors)
    slots = bins + 1                        # bin 64 holds the maximum: added to bin 63 at the end
    dump = n * slots                        # tensors binned apart land here
    counts = np.zeros(dump + 1, np.int64)
    ranges = np.full((n, 2), np.nan)
    present = [i for i, t in enumerate(tensors) if t is not None and local_shard(t).numel() > 0]
    for start, stop in size_chunks([local_shard(tensors[i]).numel() for i in present], scratch.limit):
        chunk = present[start:stop]
        flats = [dense_values(tensors[i]).reshape(-1) for i in chunk]
        flats = [f if f.dtype == torch.float32 else f.float() for f in flats]
        sizes = [f.numel() for f in flats]
        values = scratch.array("values", np.float32, sum(sizes))
        torch.cat(flats, out=torch.from_numpy(values))   # a copy: binned in place
        offsets = np.cumsum([0] + sizes[:-1])
        with np.errstate(all="ignore"):     # NaN/Inf values are data, not warnings
            lo, hi = np.minimum.reduceat(values, offsets), np.maximum.reduceat(values, offsets)
            span = np.maximum(hi - lo, TINY)
            ranges[chunk] = np.stack([lo, hi], axis=1)
            plain = np.isfinite(span) & (span >= 64 * TINY)
            step = span / np.float32(bins)
            idx = scratch.array("bins", np.int32, len(values))
            for k in np.flatnonzero(plain).tolist():   # numpy calls on slices: ~1 us each, torch's ~3
                part = values[offsets[k]:offsets[k] + sizes[k]]
                np.subtract(part, lo[k], out=part)
                # the division writes the int32 bins: in [0, 64], truncation is the floor
                np.divide(part, step[k], out=idx[offsets[k]:offsets[k] + sizes[k]], casting="unsafe")
        idx += scratch.bin_offsets(chunk, sizes, slots)
        for k in np.flatnonzero(~plain).tolist():
            idx[offsets[k]:offsets[k] + sizes[k]] = dump
            first = chunk[k] * slots
            if lo[k] == hi[k]:              # a constant (zero biases, norm weights): all in bin 0
                counts[first] = sizes[k]
            else:
                counts[first:first + bins] = _reference_counts(flats[k].numpy(), lo[k], span[k])
        counts += torch.bincount(torch.from_numpy(idx), minlength=dump + 1).numpy()
    counts = counts[:dump].reshape(n, slots)
    counts[:, bins - 1] += counts[:, bins]
    return counts[:, :bins].astype(np.float64), ranges


def _reference_counts(x, lo, span):
    """torch.histc of (x - lo) / span over [0, 1] in 64 bins: NaN never counted."""
    bins = fmt.HIST_BINS
    with np.errstate(all="ignore"):
        y = (x - lo) / span
        y = y[(y >= 0) & (y <= 1)]
        return np.bincount(np.minimum((y * np.float32(bins)).astype(np.int64), bins - 1), minlength=bins)
