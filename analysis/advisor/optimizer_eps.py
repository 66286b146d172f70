"""An Adam-family eps so large that it, not the gradient statistics, sets the step size.

Adam's step is lr * m / (sqrt(v) + eps) (Kingma & Ba 2015): eps only guards the division and is
meant to be negligible against sqrt(v), the running RMS of each element's gradient. When eps is
10x that RMS or more, the step is ~lr * m / eps: SGD with momentum at an LR of lr / eps, at least
~10x smaller than Adam's own (eps = 1 with gradient elements of ~3e-3: ~300x). The run then trains
as with a tiny LR, and "raise the LR" is the wrong fix.

sqrt(v) of a parameter tensor, averaged over its elements, is its gradient norm / sqrt(numel):
the recorder's per-parameter gradient norms give it (median over evenly spaced records; the
global ``sys/grad_norm`` over all elements when there are none). The typical element's is the
numel-weighted median over the parameters.

Not judged: eps up to 1e-6 (torch 1e-8, Keras 1e-7, HF/BERT 1e-6 are common defaults), so those
are never blamed, whatever the gradients; and eps = 1e-3/1e-4 (some RL and TPU recipes) is only
blamed where the gradients are 10x smaller than it AND the loss stalled. Optimizers whose eps
plays another part (Adafactor, Adagrad's growing sum, Adadelta, LAMB's trust ratio) are left out.
"""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ..optimizer_settings import param_groups

EPS_OVER_GRAD = 10.0     # eps >= this x the gradient RMS: the step shrinks >= ~10x (see above)
EPS_FLOOR = 1e-6         # eps at or below this (common defaults) is never blamed
DEFAULT_EPS_TEXT = "1e-8"   # torch's default for Adam, AdamW, NAdam, RAdam, RMSprop...
MAX_RECORDS = 512        # evenly spaced gradient records read
LEFT_OUT = ("lamb", "lars", "adafactor", "adadelta", "adagrad")


def uses_eps_in_denominator(opt_type: str) -> bool:
    """Adam-family optimizers (Adam, AdamW, Adamax, NAdam, RAdam, FusedAdam, AdamW8bit, ...) and
    RMSprop: step = lr * g / (sqrt(v) + eps)."""
    t = opt_type.lower()
    return ("adam" in t or t == "rmsprop") and not any(x in t for x in LEFT_OUT)


def eps_values(opt_meta) -> list[float]:
    """The eps of every param group that holds parameters (the defaults' without groups)."""
    groups = [g for g in param_groups(opt_meta) if g.get("n_params", 1)]
    if not groups and isinstance(opt_meta, dict) and isinstance(opt_meta.get("hyperparameters"), dict):
        groups = [opt_meta["hyperparameters"]]
    out = []
    for g in groups:
        e = g.get("eps")
        if isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) and e > 0:
            out.append(float(e))
    return out


def _weighted_median(values, weights) -> float:
    order = np.argsort(values)
    v, w = np.asarray(values, np.float64)[order], np.asarray(weights, np.float64)[order]
    c = np.cumsum(w)
    return float(v[np.searchsorted(c, 0.5 * c[-1])])


def gradient_rms(sig) -> float | None:
    """The typical gradient element's RMS (see the module docstring), or None without gradients."""
    g = sig.layer.get("grad_norm")
    numel = {p.name: int(p.numel) for p in sig.params}
    if g is not None and len(g):
        idx = np.unique(np.linspace(0, len(g) - 1, min(len(g), MAX_RECORDS)).round().astype(np.int64))
        rows = g.rows(idx).astype(np.float64)
        rms, weight = [], []
        for j, name in enumerate(g.layers):
            n = numel.get(name, 0)
            col = rows[:, j]
            col = col[np.isfinite(col) & (col > 0)]
            if n > 0 and col.size:
                rms.append(float(np.median(col)) / math.sqrt(n))
                weight.append(n)
        if rms:
            return _weighted_median(rms, weight)
    total = sig.scalars.get(SYS_GRAD_NORM)
    n = sum(numel.values())
    if total is not None and n > 0:
        v = np.asarray(total[1], np.float64)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            return float(np.median(v)) / math.sqrt(n)
    return None


def eps_dominance(sig) -> dict | None:
    """{"optimizer", "eps", "grad_rms", "ratio"} when the run's optimizer divides by sqrt(v) + eps
    and its eps (the smallest over its param groups) is > EPS_FLOOR and >= EPS_OVER_GRAD x the
    gradients' typical RMS; else None."""
    opt = sig.meta.get("optimizer")
    kind = str(opt.get("type", "")) if isinstance(opt, dict) else ""
    if not uses_eps_in_denominator(kind):
        return None
    eps = eps_values(opt)
    if not eps or min(eps) <= EPS_FLOOR:
        return None
    rms = gradient_rms(sig)
    if rms is None or rms <= 0:
        return None
    ratio = min(eps) / rms
    if ratio < EPS_OVER_GRAD:
        return None
    return {"optimizer": kind, "eps": min(eps), "grad_rms": rms, "ratio": ratio}
