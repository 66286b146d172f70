"""Per-parameter gradient norms and non-finite counts, every optimizer step (group ``grads``),
with the global norm and count as ``sys/grad_norm`` / ``sys/nonfinite_grads``, and the norm the
step applied as ``sys/grad_norm_post_clip`` once clipping changed it (FORMAT.md): a run that
never clips has no such metric, where it used to repeat ``sys/grad_norm`` at every step."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import format as fmt
from ..device_stats import NonfiniteCounter, dense_values, stat_view, nonfinite_per_tensor, norms
from ..grad_capture import BackwardCapture, unscale
from ..host_stats import norms_at, norms_list
from .base import Record


class Gradients(Record):
    group = fmt.GRADS

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        tag = watched.link.tag
        # unpack()'s arg: (P, the totals' tags, whether the step may have applied another norm:
        # with an optimizer, a record may carry the applied norm after its 2P values)
        self.arg = (watched.P, tag(fmt.SYS_GRAD_NORM), tag(fmt.SYS_NONFINITE_GRADS), False)
        self._arg_applied = self.arg
        self._clip_seen = False   # writer thread: a step applied a norm other than the backward's
        self.capture = None
        self._captured = None     # (grad, its _version) per parameter when the captured backward ended
        self.count_nonfinite = NonfiniteCounter()
        # Every parameter a plain float32 CPU Parameter: the record is one loop over them (_fast_cpu)
        self._plain_cpu = watched.cpu_fast_path and watched.scaler is None and bool(watched.params) and all(
            type(p) is torch.nn.Parameter and p.dtype is torch.float32 and p.is_cpu for p in watched.params)
        if watched.optimizer is not None:
            self._arg_applied = self.arg[:3] + (True,)
        # Norms taken when backward() ends, before clipping edits the gradients, and before a
        # hand-written update without an optimizer zeroes them ahead of log() (``w.grad.zero_()``:
        # read at log() every gradient was 0, and the advisor said "the loss ignores the weights").
        scaler = watched.scaler
        self.capture = BackwardCapture(watched.params, self._compute_at_backward, watched.link.failed,
                                       scaler.scale if scaler is not None else None, watched.hooks.eager)

    # ------------------------------------------------------------ moments
    def before_step(self, step, wall, closure):
        pre_clip = self.capture.take() if self.capture is not None else None
        if not closure:   # step(closure) (LBFGS, Lightning): the gradients only exist after it ran
            self._record_step(step, wall, pre_clip)

    def after_step(self, step, wall, closure):
        if closure:
            # Before step(closure) the grads are None (first step) or the previous step's:
            # record those of the closure's last backward inside this step instead. Lightning
            # clips inside its closure: the norms captured at that backward are the pre-clip ones.
            self._record_step(step, wall, self.capture.take() if self.capture is not None else None)

    def _record_step(self, step, wall, pre_clip):
        captured, self._captured = self._captured, None
        if pre_clip is None:
            self.record(step, wall)
            return
        # Norms as backward() left them. Gradients untouched since (same tensors, same versions:
        # no clipping, read on the host for free) are what the step applies: no post-clip norm.
        # Else the applied norm travels in the same record, and the writer keeps it only if it
        # differs from the total (clip_grad_norm_ below its threshold and a GradScaler's unscale_
        # edit the gradients but leave the norm): a run that never clips has no such series.
        if self._unchanged_since(captured):
            self.emit(pre_clip, step, wall, self._arg_applied)
            return
        applied = self._applied_norm()
        if applied is None:
            # The step found none of the gradients backward() left (zero_grad() in between): the
            # metric is named without a point, as readers know it from older files ("cleared").
            self.w.link.tag(fmt.SYS_GRAD_NORM_POST_CLIP)
            self.emit(pre_clip, step, wall, self.arg)
        else:
            self.emit(_join(pre_clip, applied), step, wall, self._arg_applied)

    def _compute_at_backward(self):
        """``compute()`` when a backward pass ends, noting which gradients it saw (``_unchanged_since``)."""
        if self._plain_cpu and self.w.cpu_fast_path and self.w.scaler is None:   # (tests switch the path)
            fast = self._fast_cpu()
            if fast is not None:
                return fast
        grads = [p.grad for p in self.w.params]
        packed = self.compute(grads)
        # Two lists, not a tuple per parameter: this runs every step (~0.3 us a parameter saved).
        self._captured = None if packed is None else (
            grads, [None if g is None else g._version for g in grads])
        return packed

    def _fast_cpu(self):
        """compute() and the versions ``_unchanged_since`` compares, in one pass over the
        parameters, for a model of plain float32 CPU parameters: per parameter only what the
        record needs (a model of 10,000 tiny tensors spent ~20 us a parameter a step in
        compute()'s several passes, trial 18 A11). None (the general path) for any gradient
        that is not a contiguous float32 tensor without a graph, or without the C extension."""
        tensor, f32, strided = torch.Tensor, torch.float32, torch.strided
        grads, versions, addrs, sizes, missing = [], [], [], [], []
        for i, p in enumerate(self.w.params):
            g = p.grad
            grads.append(g)
            if g is None:
                versions.append(None)
                addrs.append(0)
                sizes.append(0)
                missing.append(i)
                continue
            if type(g) is not tensor or g.dtype is not f32 or not g.is_cpu or g.layout is not strided \
                    or g.requires_grad or not g.is_contiguous():   # (model.to("cuda") after watch())
                return None
            versions.append(g._version)
            addrs.append(g.data_ptr())
            sizes.append(g.numel())
        if len(missing) == len(grads):
            self._captured = None
            return None
        values = norms_at(addrs, sizes)   # the grads stay alive in ``grads`` meanwhile
        if values is None:
            return None
        bad = np.zeros(len(grads))
        if missing:
            values[missing] = math.nan
            bad[missing] = -1.0
        for j in np.flatnonzero(~np.isfinite(values)).tolist():   # a finite norm: finite elements
            if grads[j] is not None:
                bad[j] = float(torch.count_nonzero(~torch.isfinite(grads[j])))
        self._captured = (grads, versions)
        with np.errstate(over="ignore"):   # a norm beyond float32 is recorded as inf, silently
            return np.concatenate([values, bad]).astype(np.float32)

    def _unchanged_since(self, captured) -> bool:
        """Are the gradients the very tensors, unmodified (clipping and unscaling are in place:
        they bump the version counter), whose norms ``captured`` noted? Not with a GradScaler:
        the captured norms are unscaled, the gradients may not be."""
        if captured is None or self.w.scaler is not None:
            return False
        seen, versions = captured
        for p, s, v in zip(self.w.params, seen, versions):   # one pass: it runs every step
            g = p.grad
            if g is not s or (g is not None and g._version != v):
                return False
        return True

    def at_log(self, step, wall):
        captured = self.capture.take() if self.capture is not None else None
        self._captured = None
        if captured is not None:        # the last backward since the previous log()
            self.emit(captured, step, wall, self.arg)
        else:
            self.record(step, wall)

    def skipped_step(self, step, wall):
        self._captured = None
        if self.capture is not None:
            self.capture.take()   # overflowed fp16 gradients: normal during the scaler's warm-up

    def scaler_found(self):
        """Unscale from now on, and the record of the backward pass that just ended too: it
        was taken before the scaler was known, and carries the scale this step unscales by."""
        if self.capture is None:
            return
        scale = self.w.scaler.scale
        self.capture.scale = scale
        pending, s = self.capture.pending, scale()
        if pending is not None and s is not None:
            if isinstance(pending, np.ndarray):     # the CPU path's float32 values
                pending = torch.from_numpy(pending.astype(np.float64))
            self.capture.pending = unscale(pending, s, self.w.P)

    def remove(self):
        self._captured = None
        if self.capture is not None:
            self.capture.remove()

    # ------------------------------------------------------------ device side
    def record(self, step, wall):
        packed = self.compute()
        if packed is not None:
            self.emit(packed, step, wall, self.arg)

    def _applied_norm(self):
        """Global norm of the gradients the optimizer step uses, a 0-d device tensor (no host
        read), or None when the step finds no gradient (``zero_grad()`` after ``backward()``)."""
        w = self.w
        grads = [p.grad for p in w.params if p.grad is not None]
        if not grads:
            return None
        grads = [dense_values(g) if g.is_sparse or g.requires_grad else stat_view(g) for g in grads]
        return torch.linalg.vector_norm(torch.stack(w.to_one(norms(grads))))

    def compute(self, current=None):
        """One record of the gradients (``current``: the parameters' ``.grad``, read here if not
        given): P norms, then P non-finite counts, -1 for a parameter without a gradient (its
        norm NaN). The totals are the writer's (``unpack``): two reductions, a stack and a cat
        fewer per step, each a kernel launch that a launch-bound GPU loop pays for on the host."""
        w = self.w
        if current is None:
            current = [p.grad for p in w.params]
        present, grads = [], []
        for i, g in enumerate(current):
            if g is not None:
                g = stat_view(g)
                present.append(i)
                # detach() costs ~3 us a tensor (measured: 2000-tensor model); only needed for
                # sparse grads or grads that carry a graph (backward(create_graph=True))
                grads.append(dense_values(g) if g.is_sparse or g.requires_grad else g)
        if not grads:
            return None
        # Gradients still multiplied by a GradScaler's loss scale: their squares can overflow float32.
        wide = torch.float64 if w.scaler is not None else torch.float32
        if w.cpu_fast_path and all(g.is_cpu for g in grads):
            values = norms_list(grads)     # float64 sums in C; None without the extension
            if values is None:
                values = torch.stack(norms(grads, dtype=wide)).tolist()
            return self._compute_cpu(present, grads, values)
        # This runs at every step: each torch call is a kernel launch a launch-bound GPU loop
        # pays for on the host, so the record is the fused norms, the counter's few kernels
        # and a stack and cat.
        P = w.P
        found = w.to_one(norms(grads, dtype=wide))
        if w.on_one_device(grads):
            bad = self.count_nonfinite(grads)                # (len(present),) on found's device
        else:
            bad = torch.stack(w.to_one(nonfinite_per_tensor(grads)))
        if len(present) == P:
            return torch.cat([torch.stack(found), bad])     # P norms, then P counts
        nan, absent = w.const(found[0].device)   # parameters without a gradient: NaN, -1
        full = [nan] * P + [absent] * P
        for j, (i, count) in enumerate(zip(present, bad.unbind())):
            full[i], full[P + i] = found[j], count
        return torch.stack(full)

    def _compute_cpu(self, present, grads, values):
        """CPU tensors: reading values costs no device sync, and a few Python float operations
        are cheaper than the dozen small torch ops of the device path (measured: ~2x less
        overhead per step on a small MLP). A finite norm means finite elements, so elements are
        only counted for tensors whose norm is not finite."""
        P = self.w.P
        full_norms, full_bad = [math.nan] * P, [-1.0] * P     # -1: no gradient (see compute)
        for j, i in enumerate(present):
            v = values[j]
            full_norms[i] = v
            full_bad[i] = 0.0 if math.isfinite(v) else float(torch.count_nonzero(~torch.isfinite(grads[j])))
        if self.w.scaler is None:   # staged as a numpy array: no torch call
            with np.errstate(over="ignore"):   # a norm beyond float32 is recorded as inf, silently
                return np.array(full_norms + full_bad, np.float32)
        # grad_capture.unscale() divides these by the loss scale, a tensor
        return torch.from_numpy(np.array(full_norms + full_bad, np.float64))

    # ------------------------------------------------------------ writer side
    def unpack(self, values, arg, step, wall, rows):
        p, tag_norm, tag_nonfinite, stepped = arg
        norm, counts = values[:p], values[p:2 * p]
        present = counts >= 0                # -1: no gradient, left out of the totals
        if present.all():
            squares, bad = np.square(norm, dtype=np.float64).sum(), counts.sum(dtype=np.float64)
        else:
            squares = np.square(norm[present], dtype=np.float64).sum()
            bad = counts[present].sum(dtype=np.float64)
            counts = np.where(present, counts, 0)
        total = math.sqrt(squares) if squares == squares else math.nan   # float64: no overflow
        rows.append((step, tag_norm, total, wall))
        rows.append((step, tag_nonfinite, bad, wall))
        if stepped:
            # From the first step whose clipping changed the norm on, the applied norm at every
            # step (the backward's total where the gradients were left alone): one curve to plot
            # against sys/grad_norm, and the advisor's share of clipped steps counts them all.
            applied = float(values[2 * p]) if len(values) > 2 * p else total
            if not self._clip_seen and not same_norm(total, applied):
                self._clip_seen = True
            if self._clip_seen:
                rows.append((step, self.w.link.tag(fmt.SYS_GRAD_NORM_POST_CLIP), applied, wall))
        return {"norm": norm, "nonfinite": counts}


# Relative difference below which the applied norm is the backward's: the two are summed in
# different precisions (float64 here, float32 on the device); clipping by less is no clipping.
SAME_NORM_RTOL = 1e-4


def same_norm(total: float, applied: float) -> bool:
    """Did the step apply a gradient of the norm backward() left (NaN for NaN included)?"""
    if total != total or applied != applied:
        return total != total and applied != applied
    if math.isinf(total) or math.isinf(applied):
        return total == applied
    return abs(applied - total) <= SAME_NORM_RTOL * abs(total)


def _join(pre_clip, applied):
    """One record: the backward's 2P values, then the applied norm (same dtype and place)."""
    if isinstance(pre_clip, np.ndarray):     # the CPU fast path: host values, no torch call
        if applied.is_cpu:
            return np.append(pre_clip, np.asarray(float(applied), pre_clip.dtype))
        pre_clip = torch.from_numpy(pre_clip).to(applied.device, non_blocking=True)
    return torch.cat([pre_clip, applied.reshape(1).to(pre_clip.device, pre_clip.dtype, non_blocking=True)])

