"""Torch hooks and the statistics they compute. Imported only from ``Recorder.watch()``.

Every statistic stays on the tensor's device: no ``.item()``, ``float(t)``, blocking
``.cpu()`` or tensor-valued Python control flow, so ``torch.cuda.set_sync_debug_mode("error")``
does not trip. Results are handed to the recorder's staging area (``DeviceStaging``), which
batches them and copies them to the host asynchronously.

Step labels: records of an optimizer step carry the 0-based index of that step (the number
of optimizer steps completed before it); activation and input statistics carry the index of
the optimizer step their forward pass feeds.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from . import format as fmt
from . import writer_thread as wt
from .amp import ScalerWatch, scaler_enabled
from .grad_capture import BackwardCapture
from .h5file import LayerLayout

MAX_SNAPSHOTS = 256
SAT_THRESHOLD = 5.0      # |x| beyond this counts as saturated for unbounded modules (DeepDiagnosis)
SAT_BAND = 0.01          # bounded modules: within 1 % of the output range from a bound
NONFINITE_CHUNK = 1 << 26  # elements per temporary buffer when counting NaN/Inf gradient entries


def _compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # torch < 2.3
        return False


def due(step: int, every) -> bool:
    return bool(every) and step % every == 0


# ---------------------------------------------------------------- layout
def output_bounds(module):
    """(low, high) output range of bounded activations (format.BOUNDED_ACTIVATIONS), None for others."""
    for cls in type(module).__mro__:       # a subclass of nn.Tanh is bounded like a Tanh
        if cls.__name__ in fmt.BOUNDED_ACTIVATIONS:
            bounds = fmt.BOUNDED_ACTIVATIONS[cls.__name__]
            return bounds if bounds is not None else (float(module.min_val), float(module.max_val))
    return None


def snapshot_shape(shape) -> tuple[int, int]:
    rows = shape[0]
    cols = math.prod(shape[1:])
    return min(rows, fmt.SNAP_SIZE), min(cols, fmt.SNAP_SIZE)


class ModelLayout:
    """Parameters, leaf modules and snapshot slots of a watched model, in a fixed order."""

    def __init__(self, model, optimizer=None):
        self.param_tensors, params = [], []
        seen = set()
        module_of = {}
        for mod_name, mod in model.named_modules():
            for p_name, p in mod.named_parameters(recurse=False):
                module_of.setdefault(id(p), mod_name)
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            self.param_tensors.append(p)
            params.append((name, module_of.get(id(p), ""), tuple(p.shape), p.numel()))
        if optimizer is not None:   # parameters the optimizer updates that are not in the model
            for g, group in enumerate(optimizer.param_groups):
                for i, p in enumerate(group["params"]):
                    if id(p) not in seen:
                        seen.add(id(p))
                        self.param_tensors.append(p)
                        params.append((f"optimizer.group{g}.param{i}", "", tuple(p.shape), p.numel()))
        self.leaves = []
        modules = []
        for name, mod in model.named_modules():
            if next(mod.children(), None) is None:
                self.leaves.append(mod)
                modules.append((name or "(root)", type(mod).__name__))
        # Empty matrices (a 0-row weight) have nothing to pool: adaptive_avg_pool2d raised and
        # switched every instrument off, so they get no snapshot slot.
        self.snap_params = [i for i, p in enumerate(self.param_tensors)
                            if p.dim() >= 2 and p.numel() > 0][:MAX_SNAPSHOTS]
        self.layout = LayerLayout(
            params=params, modules=modules, snap_params=self.snap_params,
            snap_shapes=[snapshot_shape(self.param_tensors[i].shape) for i in self.snap_params])
        self.n_snap_candidates = sum(p.dim() >= 2 and p.numel() > 0 for p in self.param_tensors)

    def structure(self, model) -> dict:
        mods = [{"name": n or "(root)", "type": type(m).__name__,
                 "params": sum(p.numel() for p in m.parameters(recurse=False))}
                for n, m in model.named_modules()]
        return {"modules": mods, "n_params": sum(p.numel() for p in self.param_tensors)}


# ---------------------------------------------------------------- statistics (device side)
def _values(t):
    t = t.detach()
    return t.coalesce().values() if t.is_sparse else t


def _norms(tensors, ord=2, dtype=torch.float32):
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
            out += _norms(torch._foreach_mul(chunk, 0.0), 0)
            chunk, size = [], 0
    if chunk:
        out += _norms(torch._foreach_mul(chunk, 0.0), 0)
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
    x = _values(t).reshape(-1).float()
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


# ---------------------------------------------------------------- hooks
class Instruments:
    """Installs the hooks of one watched model (and optimizer) and feeds the recorder."""

    def __init__(self, rec, model, optimizer, layout: ModelLayout, stats_every, hist_every, snapshot_every,
                 scaler=None):
        self.rec = rec
        self.model = model
        self.optimizer = optimizer
        self.lay = layout
        self.params = layout.param_tensors
        self.P = len(self.params)
        self.stats_every, self.hist_every, self.snapshot_every = stats_every, hist_every, snapshot_every
        self.bounds = [output_bounds(m) for m in layout.leaves]
        self.root_is_leaf = any(m is model for m in layout.leaves)
        # watch(torch.compile(model)): leaf hooks added at scheduled steps make dynamo recompile
        # (a stall of seconds, each time) and run traced on fake tensors; measured: no usable
        # activation records either way. Such models get no `acts` (FORMAT.md, torch.compile).
        self.compiled = type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod")
        self.handles = []
        self.enabled = True
        self.cpu_fast_path = not rec._device_path   # off: the GPU code path, also for CPU tensors (tests)
        self._prev = None              # weights cloned before a scheduled optimizer step
        self._acts_step = -1           # step whose activations were captured
        self._capture = None           # per-leaf stats of the forward being captured
        self._leaf_handles = []
        self._last_post = None
        self._consts = {}              # device -> (nan scalar, zero hist, nan range)
        self._warned_unknown = False
        self._n_opt_params = None
        t = rec._tag
        self.tag_grad = (t(fmt.SYS_GRAD_NORM), t(fmt.SYS_NONFINITE_GRADS))
        self.tag_input = tuple(t(n) for n in (fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD,
                                              fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX))
        self.tag_step_time = t(fmt.SYS_STEP_TIME)
        self.cuda_device = next((p.device for p in self.params if p.device.type == "cuda"), None)
        if self.cuda_device is not None:
            self.tag_cuda = (t(fmt.SYS_CUDA_ALLOC), t(fmt.SYS_CUDA_PEAK))
        self.handles.append(model.register_forward_pre_hook(self._root_pre, with_kwargs=True))
        self.handles.append(model.register_forward_hook(self._root_post, always_call=True))
        self.optimizer_watched = optimizer is not None
        self.steps_done = 0            # optimizer steps the hooks saw (a GradScaler skip is not one)
        self.scaler = self.capture = None
        if optimizer is not None:
            self.handles.append(optimizer.register_step_pre_hook(self._opt_pre))
            self.handles.append(optimizer.register_step_post_hook(self._opt_post))
            if scaler is not None and scaler_enabled(scaler):
                self.scaler = ScalerWatch(scaler, optimizer, lambda: self.steps_done,
                                          lambda: self._guard_step(self._skipped_step))
                self.tag_amp = (t(fmt.SYS_AMP_SKIPPED), t(fmt.SYS_LOSS_SCALE))
            self.capture = BackwardCapture(self.params, self.pack_grads, rec._instrument_failed,
                                           self.scaler.scale if self.scaler is not None else None)
            self.tag_post_clip = t(fmt.SYS_GRAD_NORM_POST_CLIP)

    def remove(self) -> None:
        for h in self.handles + self._leaf_handles:
            h.remove()
        for extra in (self.capture, self.scaler):
            if extra is not None:
                extra.remove()
        self.handles, self._leaf_handles = [], []
        self._prev = self._capture = None

    def _const(self, device):
        c = self._consts.get(device)
        if c is None:
            c = self._consts[device] = (
                torch.full((), math.nan, device=device),
                torch.zeros(fmt.HIST_BINS, device=device),
                torch.full((2,), math.nan, device=device),
            )
        return c

    def _guard(self, fn, *args):
        if not self.enabled:
            return
        try:
            with torch.no_grad():
                fn(*args)
        except Exception as exc:  # noqa: BLE001 - an instrument must never stop training
            self.rec._instrument_failed(exc)

    # ------------------------------------------------------------ optimizer hooks
    @staticmethod
    def _has_closure(optimizer, args, kwargs) -> bool:
        if args and args[0] is optimizer:   # torch 2.13 passes step()'s `self` in args
            args = args[1:]
        return (args[0] if args else kwargs.get("closure")) is not None

    def _opt_pre(self, optimizer, args, kwargs):
        self._guard(self._pre_step, optimizer, self._has_closure(optimizer, args, kwargs))

    def _opt_post(self, optimizer, args, kwargs):
        self._guard(self._post_step, self._has_closure(optimizer, args, kwargs))
        self.steps_done += 1
        self._advance()

    def _advance(self):
        rec = self.rec
        rec._step += 1                     # counts steps even if the instruments are off
        rec._maybe_transfer(time.perf_counter())

    def _guard_step(self, fn):
        """A GradScaler skip: record it (if the instruments are on) and count the step anyway."""
        self._guard(fn)
        self._advance()

    def _skipped_step(self):
        """The scaler found inf/NaN gradients and did not call optimizer.step()."""
        step, wall = self.rec._step, time.time()
        self.capture.take()   # overflowed fp16 gradients: normal during the scaler's warm-up
        self.rec._host_value(step, self.tag_amp[0], 1.0, wall)
        self._record_scale(step, wall)

    def _record_scale(self, step, wall):
        scale = self.scaler.scale()
        if scale is None:
            return
        if scale.device.type == "cpu" and self.cpu_fast_path:
            self.rec._host_value(step, self.tag_amp[1], float(scale), wall)
        else:
            self.rec.staging.add(scale.detach().clone().reshape(()), wt.SCALAR, step, wall, self.tag_amp[1])

    def _pre_step(self, optimizer, closure: bool = False):
        step, wall = self.rec._step, time.time()
        self._check_new_params(optimizer)
        self.record_lr(optimizer, step, wall)
        pre_clip = self.capture.take() if self.capture is not None else None
        if self.scaler is not None:
            self._record_scale(step, wall)
        if closure:
            pass   # step(closure) (LBFGS): the gradients only exist after it ran
        elif pre_clip is not None:
            # Norms as backward() left them; the norm the step applies (after clipping) beside them.
            self.rec.staging.add(pre_clip, wt.GRADS, step, wall, (self.P,) + self.tag_grad)
            self.record_applied_norm(step, wall)
        else:
            self.record_grads(step, wall)
        if due(step, self.stats_every):
            self._prev = torch._foreach_mul([p.detach() for p in self.params], 1.0) if self.params else None

    def _post_step(self, closure: bool = False):
        rec = self.rec
        step, wall, now = rec._step, time.time(), time.perf_counter()
        if closure:
            # Before step(closure) the grads are None (first step) or the previous step's:
            # record those of the closure's last evaluation inside this step instead.
            self.record_grads(step, wall)
        if self._last_post is not None:
            rec._host_value(step, self.tag_step_time, now - self._last_post, wall)
        self._last_post = now
        if self.cuda_device is not None:
            rec._host_value(step, self.tag_cuda[0], float(torch.cuda.memory_allocated(self.cuda_device)), wall)
            rec._host_value(step, self.tag_cuda[1], float(torch.cuda.max_memory_allocated(self.cuda_device)), wall)
        if self._prev is not None:
            self.record_weights(step, wall, self._prev)
            self._prev = None
        self.record_scheduled(step, wall)

    def on_log(self, step, wall):
        """Without an optimizer: gradient/weight statistics at each log() call."""
        def run():
            self.record_grads(step, wall)
            if due(step, self.stats_every):
                self.record_weights(step, wall, None)
            self.record_scheduled(step, wall)
        self._guard(run)

    def _check_new_params(self, optimizer):
        n_opt = sum(len(g["params"]) for g in optimizer.param_groups)
        if self._warned_unknown or n_opt == self._n_opt_params:
            return
        self._n_opt_params = n_opt
        known = {id(p) for p in self.params}
        n = sum(1 for g in optimizer.param_groups for p in g["params"] if id(p) not in known)
        if n:
            self._warned_unknown = True
            self.rec._warn_once("<layout>", f"{n} optimizer parameter(s) added after watch() are not recorded "
                                            "(the per-layer layout is frozen at watch())")

    # ------------------------------------------------------------ per-step statistics
    def record_lr(self, optimizer, step, wall):
        rec = self.rec
        for i, group in enumerate(optimizer.param_groups):
            lr = group.get("lr")
            if lr is None:
                continue
            tag = rec._tag(fmt.lr_tag(i))
            if isinstance(lr, torch.Tensor):
                if lr.device.type == "cpu" and self.cpu_fast_path:
                    rec._host_value(step, tag, float(lr), wall)
                else:
                    # a copy: schedulers update a tensor lr in place before the batch is sent
                    rec.staging.add(lr.detach().clone(), wt.SCALAR, step, wall, tag)
            else:
                rec._host_value(step, tag, float(lr), wall)

    def record_grads(self, step, wall):
        packed = self.pack_grads()
        if packed is not None:
            self.rec.staging.add(packed, wt.GRADS, step, wall, (self.P,) + self.tag_grad)

    def record_applied_norm(self, step, wall):
        """Global norm of the gradients the optimizer step uses (``sys/grad_norm_post_clip``)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        grads = [_values(g) if g.is_sparse or g.requires_grad else g for g in grads]
        total = torch.linalg.vector_norm(torch.stack(self._to_one(_norms(grads))))
        if self.cpu_fast_path and total.device.type == "cpu":
            self.rec._host_value(step, self.tag_post_clip, float(total), wall)
        else:
            self.rec.staging.add(total, wt.SCALAR, step, wall, self.tag_post_clip)

    def pack_grads(self):
        """One record of the current gradients: P norms, P non-finite counts, total norm, total count."""
        present, grads = [], []
        for i, p in enumerate(self.params):
            g = p.grad
            if g is not None:
                present.append(i)
                # detach() costs ~3 us a tensor (measured: 2000-tensor model); only needed for
                # sparse grads or grads that carry a graph (backward(create_graph=True))
                grads.append(_values(g) if g.is_sparse or g.requires_grad else g)
        if not grads:
            return None
        # Gradients still multiplied by a GradScaler's loss scale: their squares can overflow float32.
        norms = _norms(grads, dtype=torch.float64 if self.scaler is not None else torch.float32)
        if self.cpu_fast_path and all(g.device.type == "cpu" for g in grads):
            return self._pack_grads_cpu(present, grads, norms)
        bad = self._to_one(nonfinite_counts(grads))
        norms = self._to_one(norms)
        if len(present) == self.P:
            full_norms, full_bad = norms, bad
        else:  # parameters without a gradient: norm NaN, non-finite count 0
            nan, zero = self._const(norms[0].device)[0], self._const(norms[0].device)[1][0]
            full_norms, full_bad = [nan] * self.P, [zero] * self.P
            for j, i in enumerate(present):
                full_norms[i], full_bad[i] = norms[j], bad[j]
        total_norm = torch.linalg.vector_norm(torch.stack(norms))
        total_bad = torch.stack(bad).sum()
        return torch.cat([torch.stack(full_norms), torch.stack(full_bad), total_norm[None], total_bad[None]])

    def _pack_grads_cpu(self, present, grads, norms):
        """CPU tensors: reading values costs no device sync, and a few Python float operations
        are cheaper than the dozen small torch ops of the device path (measured: ~2x less
        overhead per step on a small MLP). A finite norm means finite elements, so elements are
        only counted for tensors whose norm is not finite."""
        values = torch.stack(norms).tolist()
        full_norms, full_bad = [math.nan] * self.P, [0.0] * self.P
        for j, i in enumerate(present):
            v = values[j]
            full_norms[i] = v
            if not math.isfinite(v):
                full_bad[i] = float(torch.count_nonzero(~torch.isfinite(grads[j])))
        total = math.sqrt(math.fsum(v * v for v in values))
        return torch.tensor(full_norms + full_bad + [total, math.fsum(full_bad)],
                            dtype=torch.float64 if self.scaler is not None else torch.float32)

    def record_weights(self, step, wall, prev):
        if not self.params:
            return
        current = [p.detach() for p in self.params]
        w = torch.stack(self._to_one(_norms(current)))
        if prev is None:
            u = torch.full_like(w, math.nan)
        else:
            torch._foreach_sub_(prev, current)           # in place: no second copy of the weights
            u = torch.stack(self._to_one(_norms(prev)))
        self.rec.staging.add(torch.cat([w, u, u / w]), wt.WEIGHTS, step, wall, self.P)

    def record_scheduled(self, step, wall):
        if self.params and due(step, self.hist_every):
            device = self.params[0].device
            _, zeros, nan2 = self._const(device)
            wc, wr, gc, gr = [], [], [], []
            for p in self.params:
                c, r = histogram(p, zeros, nan2)
                wc.append(c.to(device, non_blocking=True))
                wr.append(r.to(device, non_blocking=True))
                c, r = histogram(p.grad, zeros, nan2)
                gc.append(c.to(device, non_blocking=True))
                gr.append(r.to(device, non_blocking=True))
            packed = torch.cat([torch.stack(wc).reshape(-1), torch.stack(wr).reshape(-1),
                                torch.stack(gc).reshape(-1), torch.stack(gr).reshape(-1)])
            self.rec.staging.add(packed, wt.HISTS, step, wall, self.P, wide=True)
        if self.lay.snap_params and due(step, self.snapshot_every):
            snaps = self._to_one([snapshot(self.params[i]) for i in self.lay.snap_params])
            self.rec.staging.add(torch.stack(snaps), wt.SNAPS, step, wall, len(snaps))

    def _to_one(self, tensors):
        """Move results of a model spread over devices to the first one (async copies)."""
        device = tensors[0].device
        return [t if t.device == device else t.to(device, non_blocking=True) for t in tensors]

    # ------------------------------------------------------------ forward hooks
    def _root_pre(self, module, args, kwargs):
        if _compiling():
            # torch.compile'd after watch(): dynamo traces this hook with fake tensors, so its
            # statistics would be lost and its side effects break the graph; skip (FORMAT.md).
            return
        if module.training and self.optimizer_watched:
            self.rec._forward_step = self.rec._step
        if not self.enabled or not module.training or self._capture is not None:
            return
        step = self.rec._step
        if not due(step, self.stats_every) or self._acts_step == step:
            return
        self._acts_step = step
        self._guard(self._start_capture, step, args, kwargs)

    def _start_capture(self, step, args, kwargs):
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if x is not None and x.is_floating_point() and x.numel() > 0:
            self.rec.staging.add(input_stats(x), wt.SCALARS4, step, time.time(), self.tag_input)
        self._capture = [None] * len(self.lay.leaves)
        if self.compiled:
            return   # see __init__: no leaf hooks on a torch.compile'd model
        for i, m in enumerate(self.lay.leaves):
            if m is not self.model:
                self._leaf_handles.append(m.register_forward_hook(self._leaf_hook(i)))

    def _leaf_hook(self, i):
        def hook(module, args, output):
            cap = self._capture
            if cap is not None and cap[i] is None and module.training:
                self._guard(self._store, cap, i, output)
        return hook

    def _store(self, cap, i, output):
        stats = activation_stats(output, self.bounds[i])
        cap[i] = stats if stats is not None else False

    def _root_post(self, module, args, output):
        cap = self._capture
        if cap is None or _compiling():
            return
        for h in self._leaf_handles:
            h.remove()
        self._leaf_handles = []
        self._capture = None
        self._guard(self._finish_capture, cap, output)

    def _finish_capture(self, cap, output):
        if self.root_is_leaf:
            i = next(i for i, m in enumerate(self.lay.leaves) if m is self.model)
            self._store(cap, i, output)
        found = [c for c in cap if c is not None and c is not False]
        if not found:
            return
        device = found[0].device
        nan_row = torch.full((len(fmt.ACT_FIELDS),), math.nan, device=device)
        rows = [c.to(device, non_blocking=True) if (c is not None and c is not False) else nan_row for c in cap]
        self.rec.staging.add(torch.stack(rows), wt.ACTS, self._acts_step, time.time(), len(cap))
