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
from .device_stats import (SAT_THRESHOLD, dense_for_histograms, dense_values, plain_values, stat_view, saturation_band,
                           size_chunks, unit_dim)

NATIVE_INTERFACE = 2    # recorder/_native.c's INTERFACE_VERSION that this module calls


def _load_native():
    """The optional C extension (recorder/_native.c), or None: not built (no C compiler at
    install; numpy gives the same values), or built from other sources than these (an editable
    install not rebuilt after an update: used anyway it could fail or read wrong arguments)."""
    try:
        from . import _native
    except ImportError:
        return None
    if getattr(_native, "INTERFACE_VERSION", None) != NATIVE_INTERFACE:
        import warnings

        warnings.warn("trainspect: the C statistics extension was built from other sources than "
                      "this trainspect; CPU statistics use numpy until it is rebuilt "
                      "(pip install -e . in the source folder)", RuntimeWarning, stacklevel=2)
        return None
    return _native


_native = _load_native()

TINY = np.finfo(np.float32).tiny
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _flat(t):
    """(address, element count, owner) of this rank's values of ``t`` as contiguous float32 for
    the C extension; ``owner`` keeps a converted copy alive. A plain contiguous float32 tensor
    (nearly every weight and gradient) is read where it lies: ~1 us here instead of ~5 for the
    general shard/sparse/dtype handling, which adds up over the tensors of every step."""
    if type(t) in _PLAIN and t.dtype is torch.float32 and t.layout is torch.strided and t.is_contiguous():
        return t.data_ptr(), t.numel(), t
    plain = plain_values(t)
    if plain is None:
        raise ValueError(f"{type(t).__name__} holds no readable values")   # never a raw pointer to read
    flat = dense_values(plain).reshape(-1)
    flat = (flat if flat.dtype == torch.float32 else flat.float()).contiguous()
    return flat.data_ptr(), flat.numel(), flat


def activation_row(x, bounds) -> list:
    """format.ACT_FIELDS of one non-empty float32 CPU module output ``x`` as 6
    Python floats, computed at once, so an in-place module after this one (``ReLU(inplace=True)``)
    cannot change them.

    Few passes over the data, since this runs on every leaf of a scheduled step (each pass over a
    leaf of the transformer benchmark costs ~10-20 us, each torch call a few): min and max
    (numpy), the sum and the sum of squares (torch: cascade sum, BLAS dot), so the variance is
    E[x^2] - mean^2 without a centred copy. That subtraction loses precision only as
    mean^2 / variance grows (the dot's relative error times 1 + mean^2 / variance), so above 1
    (a sigmoid's outputs, 1e4 + noise) the variance is taken from centred values, as the device
    path always does. One ``x <= 0`` mask gives the count and the dead units (all of a unit's
    elements <= 0: its maximum is; a NaN is neither). The range decides the counts it implies
    (none <= 0 when the minimum is > 0, all when the maximum is <= 0, none beyond the
    saturation thresholds when the range is inside them); NaN ranges never skip a count.
    With the C extension all of it is one read of the data (``_native_row``)."""
    if _native is not None:
        return _native_row(x, bounds)
    flat = x.detach().reshape(-1)      # (the caller may pass an output that requires grad)
    a = flat.numpy()
    n = a.size
    with np.errstate(all="ignore"):       # NaN/Inf activations are data, not warnings
        lo, hi, mean, std = _moments(flat, a)
        if lo > 0:
            nonpos, dead = 0, 0.0
        elif hi <= 0:
            nonpos, dead = n, 1.0
        else:
            mask = a <= 0
            nonpos = np.count_nonzero(mask)
            dead = _dead_fraction(mask, x.shape) if x.dim() else 0.0
        if x.dim() == 0:
            dead = math.nan
        if bounds is not None:
            low, high = (np.float32(b) for b in saturation_band(bounds))   # compared as float32, as torch does
            if lo > low and hi < high:
                sat = 0
            else:   # the bands are disjoint (1 % each side): the two counts add up to their union
                sat = np.count_nonzero(a <= low) + np.count_nonzero(a >= high)
        else:       # |x| > threshold: the side(s) the range reaches
            sat = (0 if hi <= SAT_THRESHOLD else np.count_nonzero(a > SAT)) + \
                  (0 if lo >= -SAT_THRESHOLD else np.count_nonzero(a < -SAT))
    absmax = max(-lo, hi) if hi == hi else math.nan   # NaN anywhere: NaN min and max
    return [mean, std, absmax, nonpos / n, float(dead), sat / n]


SAT = np.float32(SAT_THRESHOLD)


def _units(shape) -> tuple:
    """(outer, units, inner) of an output of ``shape`` (``unit_dim``); (0, 0, 0) for a 0-d one."""
    if not shape:
        return 0, 0, 0                  # no units: no dead fraction
    unit = unit_dim(len(shape))
    return math.prod(shape[:unit]), shape[unit], math.prod(shape[unit + 1:])


def _saturation_args(bounds) -> tuple:
    """(mode, low, high) of _native.stats' saturated count for a module bounded by ``bounds``."""
    if bounds is not None:              # 1: x <= low or x >= high, compared as float32
        return (1, *saturation_band(bounds))
    return 2, -SAT_THRESHOLD, SAT_THRESHOLD   # 2: x > high or x < low


# Both are asked for every leaf of every scheduled forward, with a handful of distinct answers:
# kept (bounded) rather than recomputed (~3 us a leaf).
_UNITS, _SATURATION = {}, {}


def _cached(cache: dict, fn, key):
    value = cache.get(key)
    if value is None:
        if len(cache) > 4096:
            cache.clear()
        value = cache[key] = fn(key)
    return value


def _native_row(x, bounds) -> list:
    """activation_row through the C extension: the same fields, with sums in float lanes of
    1024-value blocks joined in float64 (the numpy path: torch's float32 sum and dot)."""
    x = x.contiguous()
    n = x.numel()
    outer, units, inner = _cached(_UNITS, _units, x.shape)
    mode, low, high = _cached(_SATURATION, _saturation_args, bounds)
    lo, hi, total, squares, _, nonpos, sat, dead = _native.stats(
        x.data_ptr(), n, outer, units, inner, mode, low, high)
    absmax = max(-lo, hi) if hi == hi else math.nan   # NaN anywhere: NaN min and max
    return [total / n, math.sqrt(squares / n), absmax, nonpos / n,
            dead / units if units else math.nan, sat / n]


def _moments(flat, a):
    """(min, max, mean, population std) of a flat float32 CPU tensor and its numpy view."""
    n = a.size
    lo, hi = float(a.min()), float(a.max())
    mean = float(torch.sum(flat)) / n
    var = float(torch.dot(flat, flat)) / n - mean * mean
    if not mean * mean <= var < math.inf:    # also NaN/Inf (an overflowed dot)
        m = flat.mean()
        centred = flat - m
        mean, var = float(m), float(torch.dot(centred, centred)) / n
    return lo, hi, mean, math.sqrt(var) if var == var else math.nan


def input_row(x) -> list:
    """[mean, std, min, max] of a CPU tensor (``device_stats.input_stats``'s values) as floats."""
    if _native is not None and x.numel():
        addr, n, _owner = _flat(x)          # _owner: a converted copy stays alive for the call
        lo, hi, total, squares, *_ = _native.stats(addr, n, 0, 0, 0, 0, 0.0, 0.0)
        return [total / n, math.sqrt(squares / n), lo, hi]
    flat = x.detach().reshape(-1)
    flat = flat if flat.dtype == torch.float32 else flat.float()
    with np.errstate(all="ignore"):
        lo, hi, mean, std = _moments(flat, flat.numpy())
    return [mean, std, lo, hi]


def _dead_fraction(mask, shape) -> float:
    """The fraction of units (``unit_dim``) whose elements are all marked in ``mask`` (the
    flat ``x <= 0`` of an output of ``shape``, C order)."""
    unit = unit_dim(len(shape))
    units, inner = shape[unit], math.prod(shape[unit + 1:])
    if inner == 1:          # units last (N, C), (N, T, C), or a vector
        per_unit = np.logical_and.reduce(mask.reshape(-1, units), axis=0)
    else:                   # (N, C, H, W, ...)
        per_unit = np.logical_and.reduce(mask.reshape(-1, units, inner), axis=(0, 2))
    return np.count_nonzero(per_unit) / units


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
    (all in bin 0) excepted. ``scratch``: buffers reused from the previous call.
    With the C extension each tensor is read twice, in place (``_native_histograms``)."""
    tensors = dense_for_histograms(tensors)
    if _native is not None:
        return _native_histograms(tensors)
    scratch = scratch or Scratch()
    bins, n = fmt.HIST_BINS, len(tensors)
    slots = bins + 1                        # bin 64 holds the maximum: added to bin 63 at the end
    dump = n * slots                        # tensors binned apart land here
    counts = np.zeros(dump + 1, np.int64)
    ranges = np.full((n, 2), np.nan)
    present = [i for i, t in enumerate(tensors) if t is not None and stat_view(t).numel() > 0]
    for start, stop in size_chunks([stat_view(tensors[i]).numel() for i in present], scratch.limit):
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
            counts[first:first + bins] = _counts_apart(flats[k].numpy(), lo[k], hi[k])
        counts += torch.bincount(torch.from_numpy(idx), minlength=dump + 1).numpy()
    counts = counts[:dump].reshape(n, slots)
    counts[:, bins - 1] += counts[:, bins]
    return counts[:, :bins].astype(np.float64), ranges


def _counts_apart(values, lo, hi):
    """The 64 counts of a tensor the fast binning leaves (NaN/Inf values, a constant, a range
    below 64 x the smallest normal float), ``lo`` and ``hi`` its float32 range: a constant (zero
    biases, norm weights) all in bin 0, the others by the per-tensor reference computation."""
    if lo == hi:
        counts = np.zeros(fmt.HIST_BINS, np.int64)
        counts[0] = values.size
        return counts
    with np.errstate(all="ignore"):
        return _reference_counts(values, lo, np.maximum(hi - lo, TINY))


def _reference_counts(x, lo, span):
    """torch.histc of (x - lo) / span over [0, 1] in 64 bins: NaN never counted."""
    bins = fmt.HIST_BINS
    with np.errstate(all="ignore"):
        y = (x - lo) / span
        y = y[(y >= 0) & (y <= 1)]
        return np.bincount(np.minimum((y * np.float32(bins)).astype(np.int64), bins - 1), minlength=bins)


def _native_histograms(tensors):
    """histograms() through the C extension: a range pass and a binning pass over each float32
    tensor where it lies (no concatenated copy, no index buffer), the same float32 arithmetic
    and so the same bins (a constant: all in bin 0, as _counts_apart); the tensors it leaves
    (NaN/Inf values, tiny ranges) take the numpy path's handling."""
    bins, n = fmt.HIST_BINS, len(tensors)
    flats = [None if t is None else _flat(t) for t in tensors]   # the owners stay alive for the call
    addrs = np.array([0 if f is None else f[0] for f in flats], np.int64)
    sizes = np.array([0 if f is None else f[1] for f in flats], np.int64)   # 0: left out (NaN range)
    counts, ranges, binned = np.zeros((n, bins), np.int64), np.full((n, 2), np.nan), np.zeros(n, np.uint8)
    _native.histograms(addrs, sizes, counts, ranges, binned)
    if not binned.all():
        for j in np.flatnonzero((binned == 0) & (sizes > 0)).tolist():
            lo, hi = ranges[j].astype(np.float32)
            counts[j] = _counts_apart(flats[j][2].detach().reshape(-1).numpy(), lo, hi)
    return counts.astype(np.float64), ranges


def snapshots(tensors) -> np.ndarray | None:
    """``device_stats.snapshot`` of CPU weight matrices as one (k, 32, 32) float32 array, all
    pooled in one call of the C extension; None without it (the caller pools with torch)."""
    if _native is None:
        return None
    s = fmt.SNAP_SIZE
    mats = [(_flat(t), stat_view(t).shape) for t in tensors]    # the owners stay alive for the call
    out = np.full((len(mats), s, s), np.nan, np.float32)
    addrs = np.array([a if size else 0 for (a, size, _), _ in mats], np.int64)
    shapes = np.array([(shape[0], size // shape[0]) if size else (0, 0) for (_, size, _), shape in mats],
                      np.int64).reshape(-1, 2)
    _native.snapshots(addrs, shapes, out)
    return out


class WeightCopy:
    """The weights before an optimizer step, copied into one float32 buffer kept while
    consecutive steps are due (a fresh copy each step costs an allocation and its page faults).
    With the C extension the copy is one call (``_native.gather``, ~3.5x cheaper than
    ``torch._foreach_copy_``'s dispatch per tensor), and ``addrs`` holds where each copy lies."""

    def __init__(self):
        self.buffer = None
        self.views = []
        self.addrs = None           # int64 addresses of the views (the C path's ``before``)
        self._sizes = []            # element count of each view

    def release(self) -> None:
        self.buffer, self.views, self.addrs, self._sizes = None, [], None, []

    def take(self, params) -> list:
        if _native is not None:
            flats = [_flat(p) for p in params]          # the owners stay alive for the call
            sizes = [size for _, size, _ in flats]
            if self.buffer is None or self._sizes != sizes:
                self._allocate(params, sizes)
            _native.gather(np.array([a for a, _, _ in flats], np.int64), np.array(sizes, np.int64),
                           self.buffer.data_ptr())
            return self.views
        shards = [stat_view(p.detach()) for p in params]
        if self.buffer is None or [v.shape for v in self.views] != [s.shape for s in shards]:
            self._allocate(params, [s.numel() for s in shards])
        torch._foreach_copy_(self.views, shards)
        return self.views

    def _allocate(self, params, sizes) -> None:
        shapes = [stat_view(p.detach()).shape for p in params]
        self.buffer = torch.empty(sum(sizes), dtype=torch.float32)
        self.views = [v.view(shape) for v, shape in zip(self.buffer.split(sizes), shapes)]
        # An empty view's address is 0, which _native.norms reads as "no copy" (update NaN);
        # nothing of it is read, so any other address gives its update, 0, as the torch path does.
        self.addrs = np.array([v.data_ptr() or 1 for v in self.views], np.int64)
        self._sizes = sizes


def weight_norms(params, before) -> np.ndarray | None:
    """[weight norms, update norms, update / weight] (3P float32) of CPU weights through the C
    extension, the update against ``before`` (``WeightCopy.addrs`` after ``take``, or None: NaN);
    None without the extension."""
    out = _norm_pairs(params, before)
    if out is None:
        return None
    weight, update = out[:, 0], out[:, 1]
    if weight.all() and np.isfinite(weight).all():   # nothing to warn about (np.errstate costs ~us)
        ratio = update / weight
    else:
        with np.errstate(all="ignore"):     # x / 0 and inf / inf as IEEE says, silently
            ratio = update / weight
    return np.concatenate([weight, update, ratio]).astype(np.float32)


def norms_list(tensors) -> list | None:
    """The L2 norm of each CPU tensor as Python floats (float64 sums, one C call), None
    without the extension: ~2x cheaper than ``torch._foreach_norm`` then ``tolist()`` for the
    dozens of small gradients of a step."""
    out = _norm_pairs(tensors, None)
    return None if out is None else out[:, 0].tolist()


def norms_at(addrs: list, sizes: list) -> np.ndarray | None:
    """The L2 norm of each float32 block (``addrs``/``sizes``: contiguous CPU tensors the
    caller keeps alive; size 0: norm 0) as float64, one C call; None without the extension.
    For a caller that read the addresses in a loop of its own (records/gradients.py)."""
    if _native is None:
        return None
    n = len(addrs)
    out = np.empty((n, 2))
    _native.norms(np.array(addrs, np.int64), np.zeros(n, np.int64), np.array(sizes, np.int64), out)
    return out[:, 0]


def _norm_pairs(tensors, before):
    """(k, 2) float64: the norm of each tensor and of its change since ``before`` (the int64
    addresses of float32 copies of them, ``WeightCopy.addrs``, or None: NaN), in one call of the
    C extension; None without it."""
    if _native is None:
        return None
    flats = [_flat(t) for t in tensors]      # the owners stay alive for the call
    addrs = np.array([a for a, _, _ in flats], np.int64)
    prev = np.zeros(len(flats), np.int64) if before is None else before
    sizes = np.array([size for _, size, _ in flats], np.int64)
    out = np.empty((len(flats), 2))
    _native.norms(addrs, prev, sizes, out)
    return out
