"""``diagnose(run)``: run every rule on a run's signals, then rank causes with all the evidence."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM, SYS_INPUT_MAX, SYS_INPUT_MEAN, SYS_INPUT_MIN, SYS_INPUT_STD, SYS_LR, SYS_NONFINITE_GRADS

from ..findings import Finding, sort_findings
from . import activation_rules as act
from . import functional_acts
from . import gradient_rules as grad
from . import input_rules as inp
from . import loss_rules as loss
from . import nan_rules as nan
from . import weight_rules as weight
from .causes import Context, attach
from ..labels import LayerLabels
from .signals import NORM_TYPES, Signals, extract
from .series import finite_prefix, head_level, tail_level

MIN_LOSS_POINTS = 20     # fewer training-loss points: the loss rules say nothing


def diagnose(run) -> list[Finding]:
    """Findings for ``run`` (an ``analysis.Run`` or a path), most severe first.

    Pure numpy over what the recorder wrote; works on live, crashed and loss-only runs.
    Each finding carries evidence, ranked causes, fixes in the order to try them, and
    what experiment would confirm it.
    """
    if not hasattr(run, "scalar_names"):
        from ..run import open_run
        with open_run(run) as opened:
            return diagnose(opened)
    return diagnose_signals(extract(run))


def _shapes(sig: Signals, layers):
    by_name = {p.name: p for p in sig.params}
    shapes = [tuple(by_name[n].shape) if n in by_name else () for n in layers]
    numel = [int(by_name[n].numel) if n in by_name else 1 for n in layers]
    return shapes, numel


def _loss_findings(sig: Signals) -> list[Finding]:
    out = []
    main = sig.train_loss or sig.val_loss
    if main is not None:
        name, s, v = main
        for rule in (loss.detect_divergence, loss.detect_oscillation, loss.detect_spikes, loss.detect_no_progress,
                     loss.detect_early_plateau):
            f = rule(s, v, series=name, min_points=MIN_LOSS_POINTS)
            if f is not None:
                out.append(f)
    if sig.val_loss is not None:
        vname, vs, vv = sig.val_loss
        t = sig.train_loss
        f = loss.detect_overfitting(t[1] if t else None, t[2] if t else None, vs, vv,
                                    train_series=t[0] if t else "train loss", val_series=vname)
        if f is not None:
            out.append(f)
    return out


def diagnose_signals(sig: Signals) -> list[Finding]:
    findings: list[Finding] = []
    ctx = Context(optimizer=str((sig.meta.get("optimizer") or {}).get("type", "")))
    types = [m.type for m in sig.modules]
    ctx.has_bounded_acts = any(t in act.BOUNDED_TYPES for t in types)
    ctx.has_relu = any(t in act.RELU_TYPES for t in types)
    ctx.has_norm_layers = any(t in NORM_TYPES for t in types)
    ctx.n_weight_layers = sum(len(p.shape) >= 2 for p in sig.params)
    label = LayerLabels(sig.modules, sig.params)

    # --- non-finite values
    nan_scalars = {}
    for role in (sig.train_loss, sig.val_loss):
        if role is not None:
            nan_scalars[role[0]] = (role[1], role[2])
    for name in (SYS_GRAD_NORM, SYS_NONFINITE_GRADS, SYS_INPUT_MEAN, SYS_INPUT_STD):
        if name in sig.scalars:
            nan_scalars[name] = sig.scalars[name]
    nan_layers = {k: sig.layer[k] for k in ("grad_nonfinite", "weight_norm", "act_mean", "act_absmax") if k in sig.layer}
    f_nan = nan.detect_nan_inf(nan_scalars, nan_layers, label=label)
    if f_nan is not None:
        findings.append(f_nan)
        _nan_context(sig, ctx, f_nan.first_step)

    # --- loss curves
    findings += _loss_findings(sig)

    # --- gradients
    if "grad_norm" in sig.layer:
        gt = sig.layer["grad_norm"]
        gs, glayers = gt.steps, gt.layers
        shapes, numel = _shapes(sig, glayers)
        cut = _rows_before(gs, f_nan)
        total = sig.scalars.get(SYS_GRAD_NORM)
        tsteps, tvals = (total[0], total[1]) if total is not None else (None, None)
        if total is not None and f_nan is not None:
            keep = tsteps < f_nan.first_step
            tsteps, tvals = tsteps[keep], tvals[keep]
        for f in (grad.detect_vanishing(gs[:cut], gt.head(cut), glayers, shapes, numel, label=label),
                  _exploding(sig, gs[:cut], gt.head(cut), glayers, shapes, f_nan, tsteps, tvals, label)):
            if f is not None:
                findings.append(f)
    g = sig.layer.get("grad_norm")
    u = sig.layer.get("update_norm")
    if g is not None or u is not None:
        layers = (g if g is not None else u).layers
        f = grad.detect_frozen(g.steps if g is not None else None, g, u.steps if u is not None else None, u, layers,
                               label=label)
        if f is not None:
            findings.append(f)
            ctx.frozen_no_update = any("update_norm == 0" in e.text for e in f.evidence)
            ctx.frozen_zero_grad = any("exactly zero gradient" in e.text for e in f.evidence)

    # --- activations
    if "act_dead_frac" in sig.layer:
        d = sig.layer["act_dead_frac"]
        mods = d.layers
        f = act.detect_dead_units(d.steps, d, sig.layer.get("act_frac_nonpos"), mods, _types_for(sig, mods),
                                  label=label)
        if f is None:   # activations applied as functions: judge the Linear/Conv pre-activations
            f = functional_acts.detect_dead_behind_functions(d.steps, d, mods, _types_for(sig, mods), label=label)
            ctx.has_relu = ctx.has_relu or f is not None
        if f is not None:
            findings.append(f)
            ctx.dead_from_start = act.dead_from_start(f)
    if "act_frac_saturated" in sig.layer:
        v = sig.layer["act_frac_saturated"]
        f = act.detect_saturation(v.steps, v, v.layers, _types_for(sig, v.layers), label=label)
        if f is not None:
            findings.append(f)

    # --- weights
    snaps = sig.snapshots
    wn = sig.layer.get("weight_norm")
    f = weight.detect_symmetric(
        snaps.steps if snaps is not None else [], snaps.data if snaps is not None else None,
        snaps.shapes if snaps is not None else None, snaps.layers if snaps is not None else [],
        weight_steps=wn.steps if wn is not None else [], weight_norm=wn,
        param_layers=wn.layers if wn is not None else None, label=label)
    if f is not None:
        findings.append(f)
    ur = sig.layer.get("update_ratio")
    if ur is not None:
        shapes, _ = _shapes(sig, ur.layers)
        cut = _rows_before(ur.steps, f_nan)
        ctx.update_ratio, per_layer = weight.update_ratio_level(ur.steps[:cut], ur.head(cut), ur.layers, shapes)
        ctx.update_ratio_max = max(per_layer.values()) if per_layer else None

    # --- inputs
    if SYS_INPUT_MEAN in sig.scalars and SYS_INPUT_STD in sig.scalars and not _token_model(types):
        ms, mv = sig.scalars[SYS_INPUT_MEAN]
        ss, sv = sig.scalars[SYS_INPUT_STD]
        n = min(len(mv), len(sv))
        lo = sig.scalars.get(SYS_INPUT_MIN)
        hi = sig.scalars.get(SYS_INPUT_MAX)
        f = inp.detect_unnormalized(ms[:n], mv[:n], sv[:n], lo[1] if lo else None, hi[1] if hi else None)
        if f is not None:
            findings.append(f)
        if hi is not None and len(hi[1]) >= 5:
            h = np.abs(hi[1][np.isfinite(hi[1])])
            ctx.input_outliers = bool(h.size and h.max() > 10 * max(np.median(h), 1e-12))

    # --- context from the loss curve, LR schedule
    _loss_context(sig, ctx, findings)
    ctx.symptoms = {f.symptom for f in findings}
    return sort_findings([attach(f, ctx) for f in findings])


def _exploding(sig, gs, gv, glayers, shapes, f_nan, tsteps, tvals, label):
    wn = sig.layer.get("weight_norm")
    ws, wv = (wn.steps, wn) if wn is not None else ([], None)
    if wn is not None:
        cut = _rows_before(ws, f_nan)
        ws, wv = ws[:cut], wn.head(cut)
    return grad.detect_exploding(gs, gv, ws, wv, glayers, shapes, total_steps=tsteps, total_norm=tvals, label=label)


def _types_for(sig: Signals, names):
    by = {m.name: m.type for m in sig.modules}
    return [by.get(n, "") for n in names]


def _token_model(types) -> bool:
    return bool(types) and types[0] in {"Embedding", "EmbeddingBag"}


def _rows_before(steps, f_nan):
    """Rows strictly before the first non-finite step (the rest says nothing about training)."""
    if f_nan is None or f_nan.first_step is None:
        return len(steps)
    return int(np.searchsorted(np.asarray(steps), f_nan.first_step, side="left"))


def _nan_context(sig: Signals, ctx: Context, first_bad: int) -> None:
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is not None:
        s, v = total
        v = v[(s < first_bad) & np.isfinite(v)]
        if v.size >= 3:
            early = float(np.median(v[: max(3, v.size // 10)]))
            late = float(np.max(v[-3:]))
            ctx.grad_growth_before_nan = late / early if early > 0 else float("inf")
    if sig.train_loss is not None:
        _, s, v = sig.train_loss
        v = v[s < first_bad]
        v = v[np.isfinite(v)]
        if v.size >= 3:
            ctx.loss_rise_before_nan = bool(np.max(v[-3:]) > 2 * np.min(v))


def _loss_context(sig: Signals, ctx: Context, findings) -> None:
    if sig.train_loss is not None:
        _, s, v = sig.train_loss
        s, v = finite_prefix(s, v)
        if len(v) >= MIN_LOSS_POINTS:
            init, end = head_level(v), tail_level(v)
            ctx.train_loss_near_zero = init > 0 and end < 0.01 * init
    spikes = next((f for f in findings if f.symptom == "loss_spikes"), None)
    if spikes is not None and sig.train_loss is not None:
        _, s, v = sig.train_loss
        idx = np.searchsorted(s, spikes.evidence[0].steps)
        nxt = np.clip(idx + 1, 0, len(v) - 1)
        ctx.spikes_isolated = bool(np.all(v[nxt] < 0.5 * v[idx]))
        total = sig.scalars.get(SYS_GRAD_NORM)
        if total is not None:
            ev = grad.grad_spike_evidence(spikes.evidence[0].steps, *total)
            if ev is not None:
                spikes.evidence.append(ev)
    lr = sig.scalars.get(SYS_LR)
    if lr is not None and len(lr[1]) >= 2:
        s, v = lr
        ok = np.isfinite(v) & (v > 0)
        if ok.sum() >= 2:
            first, last = float(v[ok][0]), float(v[ok][-1])
            ctx.lr_drop = first / last
            drop = np.flatnonzero(v[ok] < first / 10)
            ctx.lr_drop_step = int(s[ok][drop[0]]) if drop.size else None
