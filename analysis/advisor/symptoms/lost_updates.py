"""``lost_updates``: weights stored in bfloat16/float16 and stepped in place, with steps below
half their precision, so most updates round away.

``model.to(torch.bfloat16)`` with a plain optimizer is the cheap way to halve memory; it keeps
no float32 master copy. bfloat16 holds 8 significant bits: an element changes only when its
update is at least half a unit in its last place, 2^-9 to 2^-8 of its value. Adam-family steps
are about ``lr`` per element, SGD's ``lr * |g|`` (over ``1 - momentum`` with momentum): a fine-tune
at lr 2e-5 of weights of RMS 0.02 asks for 1e-3 of the weight per step and gets nearly nothing.
The loss then creeps or stalls while gradients and activations look normal.
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from ..series import fmt
from ..spec import SymptomSpec

HALF_ULP = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}   # half the relative spacing (8 and 11 significant bits)
MIN_SHARE = 0.5        # losing layers hold at least this share of the elements the optimizer steps
ADAM_LIKE = {"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Lion", "SparseAdam"}   # step ~ lr per element
SAMPLE_ROWS = 256      # records read per table: the median of a bounded, evenly spaced sample
KEEPS_UPDATES = ("stochastic", "kahan", "master")   # optimizer settings that keep sub-precision updates


def detect(sig, ctx):
    dtypes = (sig.meta.get("model") or {}).get("param_dtypes")
    opt = sig.meta.get("optimizer") or {}
    w = sig.layer.get("weight_norm")
    if not isinstance(dtypes, dict) or not isinstance(opt, dict) or w is None or not len(w):
        return None
    if any(word in str(key).lower() and value for key, value in (opt.get("hyperparameters") or {}).items()
           for word in KEEPS_UPDATES):
        return None
    low = _low_precision_params(dtypes, sig.params, ctx)
    if not low:
        return None
    relative = _relative_steps(sig, ctx, opt, w, low)
    if relative is None:
        return None
    stepped = sum(ctx.param_numel.get(n, 0) for n in relative)
    losing = {n: r for n, r in relative.items() if r < HALF_ULP[low[n]]}
    lost = sum(ctx.param_numel.get(n, 0) for n in losing)
    if not stepped or lost < MIN_SHARE * stepped:
        return None
    worst = min(losing, key=losing.get)
    kinds = sorted({low[n] for n in losing})
    steps = w.steps
    return Finding(
        symptom="lost_updates", severity="warning", first_step=int(steps[0]), last_step=int(steps[-1]),
        title=f"{lost / stepped:.0%} of the weights are stored in {'/'.join(kinds)} and their steps are below half "
              "that precision: most updates round away",
        layers=sorted(losing, key=losing.get),
        evidence=[Evidence(
            series="weight_norm", layer=worst, threshold=HALF_ULP[low[worst]],
            text=f"{ctx.label(worst)} ({low[worst]}): a step is about {fmt(losing[worst])} of a typical weight "
                 f"({_step_words(ctx.optimizer)}); {low[worst]} changes an element only by >= {fmt(HALF_ULP[low[worst]])} "
                 f"of its value; {len(losing)} of {len(relative)} stepped parameters are below it",
            values=[float(losing[worst])])],
        facts={"dtypes": kinds, "lost_share": round(lost / stepped, 3),
               "relative_step": {n: float(f"{r:.3g}") for n, r in losing.items()}},
    )


def _low_precision_params(dtypes, params, ctx) -> dict:
    """name -> dtype of the 16-bit float parameters the watched optimizer steps in place."""
    names = {}
    for dtype, indices in dtypes.items():
        if dtype in HALF_ULP and isinstance(indices, list):
            for i in indices:
                if isinstance(i, int) and 0 <= i < len(params):
                    names[params[i].name] = dtype
    skip = (ctx.frozen_params or set()) | (ctx.unoptimized_params or set())
    return {n: d for n, d in names.items() if n not in skip}


def _relative_steps(sig, ctx, opt, w, low) -> dict | None:
    """name -> a typical step over a typical weight (both per element), for the parameters in ``low``."""
    kind = ctx.optimizer
    lr = _lr(ctx, opt)
    if lr is None or (kind not in ADAM_LIKE and kind != "SGD"):
        return None
    cols = [i for i, n in enumerate(w.layers) if n in low and ctx.param_numel.get(n)]
    if not cols:
        return None
    weights = _sampled(w, cols)
    if kind == "SGD":
        g = sig.layer.get("grad_norm")
        if g is None or list(g.layers) != list(w.layers):
            return None
        ratio = _median(_sampled(g, cols)) / _median(weights)   # tables of different record rates
        momentum = _group_setting(opt, "momentum")
        scale = lr * ratio / (1.0 - min(momentum, 0.99))
    else:
        rms = _median(weights) / np.sqrt([ctx.param_numel[w.layers[i]] for i in cols])
        scale = lr / rms
    return {w.layers[i]: float(r) for i, r in zip(cols, scale) if np.isfinite(r) and r > 0}


def _median(values) -> np.ndarray:
    """Per-column median of the finite, positive values (NaN where none: an overflowed float16
    weight says nothing about its steps)."""
    v = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    out = np.full(v.shape[1], np.nan)
    some = ~np.isnan(v).all(axis=0)
    out[some] = np.nanmedian(v[:, some], axis=0)
    return out


def _sampled(table, cols) -> np.ndarray:
    n = len(table)
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype(int))
    return np.asarray(table.rows(rows), dtype=np.float64)[:, cols]


def _lr(ctx, opt) -> float | None:
    """The run's median LR: the recorded series, else the first param group's."""
    if ctx.lr_values is not None and len(ctx.lr_values):
        return float(np.median(ctx.lr_values))
    lr = _group_setting(opt, "lr")
    return lr if lr > 0 else None


def _group_setting(opt, name) -> float:
    groups = opt.get("param_groups") or []
    value = groups[0].get(name) if groups and isinstance(groups[0], dict) else None
    if value is None:
        value = (opt.get("hyperparameters") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _step_words(optimizer) -> str:
    if optimizer == "SGD":
        return "lr x gradient norm / weight norm, over 1 - momentum"
    return f"{optimizer} moves each element by about the LR"


SPEC = SymptomSpec(
    id="lost_updates",
    looks_at="parameter dtypes at `watch()`, per-parameter `weight_norm` (and `grad_norm` for SGD), `sys/lr`, the "
             "optimizer's type and settings",
    fires_when="parameters stored in bfloat16/float16 that the watched optimizer steps in place (no float32 master "
               "copy; no stochastic-rounding or Kahan setting), whose typical step (Adam family: the LR per element; "
               "SGD: lr x gradient/weight norm over 1 - momentum) is below half their precision (2^-8 of the value "
               f"for bfloat16, 2^-11 for float16), in parameters holding >= {MIN_SHARE:.0%} of the elements it steps "
               "(warning)",
    detect=detect,
    priors={"low_precision_weights": 0.95},
    word="lost updates",
)
