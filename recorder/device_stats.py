"""Statistics of tensors, computed on the tensor's device.

Every function here stays on the device: no ``.item()``, ``float(t)``, blocking ``.cpu()`` or
tensor-valued Python control flow, so ``torch.cuda.set_sync_debug_mode("error")`` does not
trip (tests/test_sync_free.py checks it). The record specs (``recorder/records/``) call them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import format as fmt

SAT_THRESHOLD = 5.0      # |x| beyond this counts as saturated for unbounded modules (DeepDiagnosis)
SAT_BAND = 0.01          # bounded modules: within 1 % of the output range from a bound
NONFINITE_CHUNK = (1 << 24) - 1  # elements per buffer when counting NaN/Inf entries: float32-exact
HIST_CHUNK = 1 << 26      # elements per temporary buffer of the fused histograms


def snapshot_shape(p) -> tuple[int, int]:
    """Rows and columns of the snapshot of weight matrix ``p`` (block-averaged to at most
    32 x 32). A complex matrix is pooled from its real view, which has twice the columns."""
    rows = p.shape[0]
    cols = math.prod(p.shape[1:]) * (2 if p.is_complex() else 1)
    return min(rows, fmt.SNAP_SIZE), min(cols, fmt.SNAP_SIZE)


def stat_view(t):
    """The tensor the statistics of a parameter or gradient read: this rank's part of a DTensor
    (FSDP2 ``fully_shard``, tensor parallel), and a complex tensor as its real view (..., 2);
    other tensors as they are. Statistics of the local shard need no collective (the recorder
    adds none); the reader combines the ranks' shard norms into global ones (FORMAT.md, *Sharded
    parameters*). The real view keeps norms exact (|z|**2 = re**2 + im**2) where a cast to float
    would drop the imaginary part (FORMAT.md, *Complex parameters*)."""
    if hasattr(t, "placements") and hasattr(t, "to_local"):
        t = t.to_local()
    return torch.view_as_real(t.resolve_conj()) if t.is_complex() and not t.is_sparse else t


def dense_values(t):
    t = stat_view(t.detach())
    return stat_view(t.coalesce().values()) if t.is_sparse else t


def dense_for_histograms(tensors) -> list:
    """Sparse tensors (an ``nn.Embedding(sparse=True)`` gradient) made dense: a histogram counts
    every element, the zeros a sparse tensor leaves out too (its counts summed to the stored
    values only). Histograms are taken every ``hist_every`` steps: the dense copy is rare."""
    if not any(t is not None and t.is_sparse for t in tensors):
        return tensors
    return [t.detach().to_dense() if t is not None and t.is_sparse else t for t in tensors]


def norms(tensors, ord=2, dtype=torch.float32):
    """Per-tensor norms as 0-d tensors (float32 unless told); one fused kernel where torch allows.
    ``tensors`` are local shards (``stat_view``, ``dense_values``): the callers take them once,
    since the gradient record runs at every step and each pass over P parameters is host time."""
    try:
        return list(torch._foreach_norm(tensors, ord, dtype=dtype))
    except (AttributeError, RuntimeError, TypeError):
        return [torch.linalg.vector_norm(t.to(dtype), ord) for t in tensors]


class NonfiniteCounter:
    """Number of NaN/Inf elements per tensor, as one float32 vector, in a few kernels whatever
    the number of tensors, and without a host sync.

    This runs at every optimizer step. The L0 norm of ``x*0`` counted exactly, but torch's fused
    norms do L1, L2 and inf only: it cost a kernel per tensor, paid on the host of a launch-bound
    GPU loop (measured on an H200: the counts were ~0.4 ms of a 2.3 ms MLP step). Here the
    tensors are concatenated behind one finite 0, ``isnan(x*0)`` marks the non-finite entries,
    and a running float32 sum of the marks, read at each tensor's last element, gives the counts
    as differences: six kernels a chunk. Chunks of at most ``NONFINITE_CHUNK`` elements keep
    the running sum exact (float32 integers <= 2**24) and bound the temporary buffers; a single
    larger tensor is counted on its own.

    The tensors' sizes give the chunks and the offsets, which go to the device once and are
    kept for the next steps (gradients keep their sizes). Local shards, as for ``norms``.
    """

    def __init__(self):
        self._plans = {}   # (device, dtype, sizes) -> [(start, stop, ends, leading 0) per chunk]

    def __call__(self, tensors):
        """(len(tensors),) float32 on the tensors' device (one device: a model spread over
        several is counted with ``nonfinite_per_tensor``)."""
        first = tensors[0]
        device = first.device
        sizes = tuple(map(torch.Tensor.numel, tensors))
        plan = self._plans.get((device, first.dtype, sizes)) or self._plan(device, first.dtype, sizes)
        parts = []
        for start, stop, ends, zero in plan:
            if ends is None:     # one tensor beyond the chunk size
                t = tensors[start]
                parts.append(torch.isnan(t * 0).sum(dtype=torch.float32).reshape(1))
                continue
            flat = _flatten([zero] + list(tensors[start:stop]))
            running = torch.isnan(flat.mul_(0)).cumsum(0, dtype=torch.float32)   # flat: our copy
            through = running.index_select(0, ends)   # non-finite up to each tensor's end; 0 first
            parts.append(through[1:] - through[:-1])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _plan(self, device, dtype, sizes):
        if len(self._plans) >= 8:      # sizes that keep changing: do not grow without bound
            self._plans.clear()
        plan = []
        for start, stop in size_chunks(sizes, NONFINITE_CHUNK):
            if sum(sizes[start:stop]) > NONFINITE_CHUNK:   # one large tensor, maybe empty ones behind
                plan += [(i, i + 1, None, None) for i in range(start, stop)]
                continue
            # positions of each tensor's last element behind the leading 0 (an empty tensor's
            # end is the previous one's: count 0); position 0 is the leading 0 itself
            ends = [0]
            for n in sizes[start:stop]:
                ends.append(ends[-1] + n)
            host = torch.tensor(ends, dtype=torch.int64, pin_memory=device.type == "cuda")
            plan.append((start, stop, host.to(device, non_blocking=True),   # pinned: no host wait
                         torch.zeros(1, dtype=dtype, device=device)))
        self._plans[(device, dtype, sizes)] = plan
        return plan


def nonfinite_per_tensor(tensors):
    """0-d counts one tensor at a time, each on its tensor's device: the L0 norm of ``x*0``
    (tensors on several devices, which ``NonfiniteCounter`` cannot concatenate)."""
    return [norms([t * 0.0], 0)[0] for t in tensors]


def _flatten(tensors):
    """One 1-D concatenation of ``tensors`` (torch's C++ helper where present: no Python loop)."""
    try:
        return torch._C._nn.flatten_dense_tensors(tensors)
    except AttributeError:
        return torch.cat([t.reshape(-1) for t in tensors])


def mean_std(flat):
    """Mean and population std in two passes (torch.std_mean is ~10x slower on the CPU)."""
    mean = flat.mean()
    centred = flat - mean
    return mean, torch.sqrt(torch.dot(centred, centred) / flat.numel())


def output_tensor(output):
    """The floating-point tensor whose statistics stand for a module output, detached and as
    float32, or None (no floating-point tensor, or an empty one)."""
    x = output
    if isinstance(x, dict):     # e.g. a custom block returning {"logits": ..., "aux": ...}
        x = tuple(x.values())
    if isinstance(x, (tuple, list)):   # also PackedSequence (a namedtuple: its data first)
        x = next((t for t in x if isinstance(t, torch.Tensor)), None)
    if not isinstance(x, torch.Tensor):
        return None
    x = plain_values(x)
    # A sparse or jagged output is left out as a non-float one is: its statistics failed (CPU:
    # "unsupported memory format", jagged: NestedIntNode) and switched every instrument off.
    if x is None or x.layout is not torch.strided or not x.is_floating_point() or x.numel() == 0:
        return None
    x = x.detach()
    return x if x.dtype == torch.float32 else x.float()


_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
_BASE_DISPATCH = torch.Tensor.__torch_dispatch__


def plain_values(x):
    """``x`` as a plain tensor whose memory holds its values, or None when it has none to read.

    A wrapper subclass (MaskedTensor, DTensor, torchao's quantized tensors) overrides
    ``__torch_dispatch__`` and its ``data_ptr()`` is no storage of its values: the C extension
    read it and the training died of SIGSEGV (trial 14). A DTensor gives this rank's shard
    (``to_local()``); another wrapper is not measured; a plain Python subclass is viewed as a
    Tensor. Nested (jagged) tensors have no single buffer either."""
    t = type(x)
    if t not in _PLAIN_TYPES:
        to_local = getattr(x, "to_local", None)
        if callable(to_local):
            try:
                x = to_local()
            except Exception:  # noqa: BLE001 - an odd wrapper: not measured
                return None
            if type(x) not in _PLAIN_TYPES and getattr(type(x), "__torch_dispatch__", _BASE_DISPATCH) is not _BASE_DISPATCH:
                return None
        elif getattr(t, "__torch_dispatch__", _BASE_DISPATCH) is not _BASE_DISPATCH:
            return None
        else:
            x = x.as_subclass(torch.Tensor)
    return None if x.is_nested else x


def unit_dim(ndim: int) -> int:
    """The dimension of a module output that indexes units (features/channels): the last of a
    (batch, time, features) output, the first of a vector, the second otherwise (N, C, ...)."""
    return ndim - 1 if ndim == 3 else (0 if ndim == 1 else 1)


def saturation_band(bounds):
    """(low, high): outputs <= low or >= high of a module bounded by ``bounds`` are saturated."""
    low, high = bounds
    band = SAT_BAND * (high - low)
    return low + band, high - band


def activation_raw(x, bounds):
    """Moments and counts of one module output ``x`` (an ``output_tensor``), on its device: a
    row of seven float32 0-d tensors (mean, variance, min, max, dead units, elements <= 0,
    saturated elements) and the host ints (elements, units). ``activation_rows`` stacks the rows
    of all leaves and turns them into ACT_FIELDS at once, so the stack, divisions, square roots
    and maxima are a few ops per forward, not per leaf.

    This runs on every leaf module of a scheduled step, so each op is a kernel launch per leaf:
    ``var_mean`` is one fused pass (mean, then a dot of the centred values, was three), and a
    count is a float32 sum of the comparison (``count_nonzero`` then ``.float()`` was two).
    Counts stay exact to 2**24 elements; beyond, their fractions are float32-accurate."""
    flat = x.reshape(-1)
    var, mean = torch.var_mean(flat, correction=0)
    lo, hi = torch.aminmax(flat)
    nonpos = (flat <= 0).sum(dtype=torch.float32)
    if x.dim() == 0:
        dead, units = torch.full((), math.nan, device=x.device), 1
    else:
        unit = unit_dim(x.dim())
        others = tuple(d for d in range(x.dim()) if d != unit)
        per_unit = x.amax(dim=others) if others else x
        dead, units = (per_unit <= 0).sum(dtype=torch.float32), per_unit.numel()
    if bounds is not None:
        low, high = saturation_band(bounds)
        sat = ((flat <= low) | (flat >= high)).sum(dtype=torch.float32)
    else:
        sat = (flat.abs() > SAT_THRESHOLD).sum(dtype=torch.float32)
    return (mean, var, lo, hi, dead, nonpos, sat), flat.numel(), units


RAW_NAN = (None, 1, 1)   # a leaf without statistics: NaN in every field


def activation_rows(raws):
    """(M, 6) float32 in format.ACT_FIELDS order from M ``activation_raw`` results (or RAW_NAN)."""
    device = next(r for r, _, _ in raws if r is not None)[0].device
    nan_row = (torch.full((), math.nan, device=device),) * 7
    values = []
    for row, _, _ in raws:
        if row is None:
            row = nan_row
        elif row[0].device != device:     # a model spread over devices
            row = [v.to(device, non_blocking=True) for v in row]
        values += row
    r = torch.stack(values).view(len(raws), 7)
    inv = torch.tensor([[1.0 / n, 1.0 / u] for _, n, u in raws], dtype=torch.float32,
                       pin_memory=device.type == "cuda")
    inv = inv.to(device, non_blocking=True)        # pinned + non_blocking: no host wait
    per_elem, per_unit = inv[:, 0], inv[:, 1]
    return torch.stack([r[:, 0], torch.sqrt(r[:, 1]), torch.maximum(-r[:, 2], r[:, 3]),
                        r[:, 5] * per_elem, r[:, 4] * per_unit, r[:, 6] * per_elem], dim=1)


def input_stats(x):
    if x.layout is not torch.strided:
        return sparse_input_stats(x)
    x = x.detach().float().reshape(-1)
    mean, std = mean_std(x)
    lo, hi = torch.aminmax(x)
    return torch.stack([mean, std, lo, hi])


def sparse_input_stats(x):
    """input_stats of a sparse tensor (a bag-of-words batch) over all its elements, the
    zeros it leaves out included: statistics of the stored values alone read a 1 %-dense
    0/5 input as mean 5, std 0. No host sync: the stored count is known on the host."""
    x = x.detach()
    if x.layout is torch.sparse_coo:
        values = x.coalesce().values()
    else:   # CSR, CSC, BSR, BSC: values() are the stored entries (blocks for BSR/BSC)
        values = x.values()
    values = values.float().reshape(-1)
    n, stored = x.numel(), values.numel()
    zero = torch.zeros((), device=values.device)
    if stored == 0:
        return torch.stack([zero, zero, zero, zero])
    mean = values.sum() / n
    centred = values - mean     # the n - stored zeros each add mean**2 to the sum of squares
    var = (torch.dot(centred, centred) + (n - stored) * mean * mean) / n
    lo, hi = torch.aminmax(values)
    if stored < n:
        lo, hi = torch.minimum(lo, zero), torch.maximum(hi, zero)
    return torch.stack([mean, torch.sqrt(var), lo, hi])


def _maxima(parts):
    """Per-tensor maxima as 0-d tensors; one fused kernel where torch has it."""
    try:
        return list(torch._foreach_max(parts))
    except (AttributeError, RuntimeError, TypeError):
        return [t.max() for t in parts]


def size_chunks(sizes, limit):
    """Consecutive index ranges ``(start, stop)`` of ``sizes`` summing to at most ``limit`` each
    (a single larger size gets a range of its own): chunks bound the temporary buffers."""
    start = 0
    while start < len(sizes):
        stop, total = start, 0
        while stop < len(sizes) and (stop == start or total + sizes[stop] <= limit):
            total += sizes[stop]
            stop += 1
        yield start, stop
        start = stop


def fused_histograms(tensors, exact_counts: bool = False):
    """64-bin histograms of every tensor over its own [min, max], all at once and sync-free.

    Returns int64 counts ``(len(tensors), 64)`` and float32 ranges ``(len(tensors), 2)``; a None
    or empty tensor gets zero counts and a NaN range, a NaN anywhere in a tensor zero counts
    (NaN/Inf values are never counted: the bins of torch.histc over the range). Every tensor
    must be on one device.

    Instead of a dozen small ops per tensor (and torch.histc, ~9x slower per value than
    bincount on the CPU) the values are copied into one float32 buffer and binned with a few
    multi-tensor ops: the bin of a value is ``floor((x - min) / (max - min) * 64)`` (the last
    bin includes max), NaN goes to a 65th slot per tensor, and the integer bins plus 65 x the
    tensor's index make one bincount count every bin of every tensor (the offset is added
    after the conversion to integers: added to the float, it rounded values near a bin edge
    into the next bin). ``exact_counts``: count with scatter_add (the GPU path: CUDA's
    bincount reads the largest index on the host).
    """
    bins = fmt.HIST_BINS
    slots = bins + 1                     # per tensor: the 64 bins, then NaN and NaN-ranged values
    tensors = [None if t is None else stat_view(t) for t in dense_for_histograms(tensors)]   # a rank's shard may be empty
    n = len(tensors)
    present = [i for i, t in enumerate(tensors) if t is not None and t.numel() > 0]
    device = tensors[present[0]].device if present else torch.device("cpu")
    nan = torch.full((), math.nan, device=device)
    lows, highs = [nan] * n, [nan] * n
    counts = torch.zeros(n * slots, dtype=torch.int64, device=device)
    for start, stop in size_chunks([tensors[i].numel() for i in present], HIST_CHUNK):
        chunk = present[start:stop]
        flats = [dense_values(tensors[i]).reshape(-1) for i in chunk]
        buf = torch.cat([f if f.dtype == torch.float32 else f.float() for f in flats]) if len(flats) > 1 \
            else flats[0].to(torch.float32, copy=True)
        sizes = [f.numel() for f in flats]
        parts = list(buf.split(sizes))
        hi = _maxima(parts)
        torch._foreach_neg_(parts)       # parts = -x, so that min x = -max(-x) is one more max
        neg_lo = _maxima(parts)
        lo_vec, hi_vec = -torch.stack(neg_lo), torch.stack(hi)
        neg_span = -(hi_vec - lo_vec).clamp_min(torch.finfo(torch.float32).tiny)
        torch._foreach_sub_(parts, neg_lo)          # -(x - min)
        torch._foreach_div_(parts, list(neg_span.unbind()))   # (x - min) / (max - min), in [0, 1]
        buf.mul_(bins).clamp_max_(bins - 1)
        buf.nan_to_num_(nan=bins, posinf=bins, neginf=bins)
        idx = buf.to(torch.int64 if exact_counts else torch.int32)
        torch._foreach_add_(list(idx.split(sizes)), [i * slots for i in chunk])
        if exact_counts:
            counts.scatter_add_(0, idx, torch.ones(1, dtype=torch.int64, device=device).expand(len(idx)))
        else:   # int32 bins: half the memory traffic of int64, bincount ~2x faster (measured)
            counts += torch.bincount(idx, minlength=n * slots)
        for k, i in enumerate(chunk):
            lows[i], highs[i] = lo_vec[k], hi_vec[k]
    ranges = torch.stack([torch.stack(lows), torch.stack(highs)], dim=1)
    return counts.reshape(n, slots)[:, :bins], ranges


def snapshot(p):
    """Block-averaged (adaptive average pooling) float32 32x32, NaN-padded."""
    s = fmt.SNAP_SIZE
    w = stat_view(p.detach())
    rows, cols = snapshot_shape(p)
    if w.numel() == 0:     # this rank's shard of a sharded matrix is empty
        return torch.full((s, s), math.nan, device=w.device)
    w = w.reshape(w.shape[0], -1).float()
    r, c = w.shape
    if r % rows == 0 and c % cols == 0:
        # Equal blocks (the usual shapes): the same averages from two sums over adjacent axes,
        # ~2x faster than adaptive_avg_pool2d on the CPU (measured: 256x256, 48 against 88 us).
        pooled = w.reshape(rows, r // rows, c).sum(1).reshape(rows, cols, c // cols).sum(2)
        pooled.div_((r // rows) * (c // cols))
    else:
        pooled = F.adaptive_avg_pool2d(w[None, None], (rows, cols))[0, 0]
    return F.pad(pooled, (0, s - cols, 0, s - rows), value=math.nan)
