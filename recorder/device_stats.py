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
NONFINITE_CHUNK = 1 << 26  # elements per temporary buffer when counting NaN/Inf gradient entries


def snapshot_shape(shape) -> tuple[int, int]:
    """Rows and columns of a weight matrix's snapshot (block-averaged to at most 32 x 32)."""
    rows = shape[0]
    cols = math.prod(shape[1:])
    return min(rows, fmt.SNAP_SIZE), min(cols, fmt.SNAP_SIZE)


def dense_values(t):
    t = t.detach()
    return t.coalesce().values() if t.is_sparse else t


def norms(tensors, ord=2, dtype=torch.float32):
    """Per-tensor norms as 0-d tensors (float32 unless told); one fused kernel where torch allows."""
    try:
        return list(torch._foreach_norm(tensors, ord, dtype=dtype))
    except (AttributeError, RuntimeError, TypeError):
        return [torch.linalg.vector_norm(t.to(dtype), ord) for t in tensors]


def nonfinite_counts(tensors):
    """Number of NaN/Inf elements per tensor, as float32 0-d tensors, without a host sync:
    x*0 is 0 for finite x and NaN otherwise, so the L0 norm of x*0 counts the non-finite
    entries (done in chunks to bound the temporary memory)."""
    out, chunk, size = [], [], 0
    for t in tensors:
        chunk.append(t)
        size += t.numel()
        if size >= NONFINITE_CHUNK:
            out += norms(torch._foreach_mul(chunk, 0.0), 0)
            chunk, size = [], 0
    if chunk:
        out += norms(torch._foreach_mul(chunk, 0.0), 0)
    return out


def mean_std(flat):
    """Mean and population std in two passes (torch.std_mean is ~10x slower on the CPU)."""
    mean = flat.mean()
    centred = flat - mean
    return mean, torch.sqrt(torch.dot(centred, centred) / flat.numel())


def activation_stats(output, bounds):
    """(6,) float32: mean, std, max|x|, frac <= 0, dead-unit fraction, saturated fraction."""
    x = output
    if isinstance(x, dict):     # e.g. a custom block returning {"logits": ..., "aux": ...}
        x = tuple(x.values())
    if isinstance(x, (tuple, list)):   # also PackedSequence (a namedtuple: its data first)
        x = next((t for t in x if isinstance(t, torch.Tensor)), None)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
        return None
    x = x.detach()
    if x.dtype != torch.float32:
        x = x.float()
    flat = x.reshape(-1)
    n = flat.numel()
    # Few full passes over the activation: this runs on every leaf module of a scheduled step.
    mean, std = mean_std(flat)
    lo, hi = torch.aminmax(flat)
    absmax = torch.maximum(-lo, hi)
    frac_nonpos = torch.count_nonzero(flat <= 0) / n
    if x.dim() == 0:
        dead = torch.full((), math.nan, device=x.device)
    else:
        unit = x.dim() - 1 if x.dim() == 3 else (0 if x.dim() == 1 else 1)
        others = tuple(d for d in range(x.dim()) if d != unit)
        per_unit = x.amax(dim=others) if others else x
        dead = torch.count_nonzero(per_unit <= 0) / per_unit.numel()
    if bounds is not None:
        low, high = bounds
        band = SAT_BAND * (high - low)
        sat = torch.count_nonzero((flat <= low + band) | (flat >= high - band)) / n
    else:
        sat = torch.count_nonzero(flat.abs() > SAT_THRESHOLD) / n
    return torch.stack([mean, std, absmax, frac_nonpos, dead, sat])


def input_stats(x):
    x = x.detach().float().reshape(-1)
    mean, std = mean_std(x)
    lo, hi = torch.aminmax(x)
    return torch.stack([mean, std, lo, hi])


def histogram(t, zeros, nan2):
    """64 counts over [min, max] of ``t`` and the range, without a host sync: the values are
    rescaled to [0, 1] on the device so ``torch.histc`` gets constant bounds."""
    if t is None or t.numel() == 0:
        return zeros, nan2
    x = dense_values(t).reshape(-1).float()
    lo, hi = torch.aminmax(x)
    span = (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    y = (x - lo) / span
    if y.is_cuda and torch.are_deterministic_algorithms_enabled():
        counts = sorted_histogram(y)     # histc on CUDA refuses to run in deterministic mode
    else:
        counts = torch.histc(y, bins=fmt.HIST_BINS, min=0.0, max=1.0)
    return counts, torch.stack([lo, hi])


def sorted_histogram(y):
    """The same 64 counts over [0, 1] as torch.histc (NaN ignored), deterministic and sync-free:
    sort, then count the values below each inner bin edge."""
    edges = torch.arange(1, fmt.HIST_BINS, device=y.device, dtype=y.dtype) / fmt.HIST_BINS
    ordered = torch.sort(y.reshape(-1)).values           # NaN sort last
    below = torch.searchsorted(ordered, edges)           # values < each inner edge
    total = torch.count_nonzero(~torch.isnan(ordered)).reshape(1)
    cum = torch.cat([torch.zeros(1, dtype=below.dtype, device=y.device), below, total])
    return (cum[1:] - cum[:-1]).float()


def snapshot(p):
    """Block-averaged (adaptive average pooling) float32 32x32, NaN-padded."""
    s = fmt.SNAP_SIZE
    w = p.detach().reshape(p.shape[0], -1).float()
    rows, cols = snapshot_shape(p.shape)
    pooled = F.adaptive_avg_pool2d(w[None, None], (rows, cols))[0, 0]
    return F.pad(pooled, (0, s - cols, 0, s - rows), value=math.nan)
