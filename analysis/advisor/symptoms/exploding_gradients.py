"""``exploding_gradients``: gradients far larger than the weights, or growing without bound (also
the growth that ended in a NaN: the ``nan_inf`` finding's precursor)."""
from __future__ import annotations

from trainspect.recorder.format import SYS_GRAD_NORM

from ...findings import Evidence, Finding
from .. import gradient_rules
from ..causes import lr_from_update_ratio
from ..chains import growth_before, growth_facts
from ..series import rounded
from ..spec import SymptomSpec
from ._cut import rows_before, shapes_of


def detect(sig, ctx):
    f = _size_or_trend(sig, ctx) or _accumulating(ctx)
    total = sig.scalars.get(SYS_GRAD_NORM)
    growth = None
    if ctx.nan_step is not None and total is not None:
        growth = growth_before(*total, ctx.nan_step, series=SYS_GRAD_NORM, what="gradient norm")
    if growth is None:
        return f
    ev = Evidence(series=SYS_GRAD_NORM, threshold=10.0,
                  text=f"{growth.summary}, then became non-finite at step {ctx.nan_step}",
                  steps=[growth.onset_step, growth.peak_step], values=rounded([growth.onset_value, growth.peak_value]))
    if f is None:
        f = Finding(symptom="exploding_gradients", severity="warning",
                    title=f"exploding gradients before the NaN: {growth.summary}",
                    first_step=growth.onset_step, last_step=growth.peak_step, evidence=[ev])
    else:
        f.evidence.insert(0, ev)
        f.title = f"exploding gradients: {growth.summary}, until they became non-finite"
        f.first_step = min(f.first_step if f.first_step is not None else growth.onset_step, growth.onset_step)
        f.last_step = max(f.last_step or growth.peak_step, growth.peak_step)
    f.facts.update(growth_facts(growth, ctx), growth_summary=growth.summary)
    return f


def _accumulating(ctx):
    acc = ctx.grads_accumulate
    if acc is None:
        return None
    return Finding(
        symptom="exploding_gradients", severity="warning",
        title=f"the gradient norm grows {acc['shape']}: {acc['early']:.3g} -> {acc['late']:.3g}",
        first_step=acc["first_step"], last_step=acc["last_step"], facts={"accumulating": True},
        evidence=[Evidence(
            series=SYS_GRAD_NORM, threshold=5.0,
            text=(f"global gradient norm grew {acc['factor']:.3g}x (threshold 5x) {acc['how']}: the signature of "
                  "gradients that are never zeroed"),
            steps=[acc["first_step"], acc["last_step"]], values=rounded([acc["early"], acc["late"]]))])


def _size_or_trend(sig, ctx):
    gt = sig.layer.get("grad_norm")
    if gt is None:
        return None
    cut = rows_before(gt.steps, ctx.nan_step)
    shapes, _ = shapes_of(sig, gt.layers)
    total = sig.scalars.get(SYS_GRAD_NORM)
    tsteps, tvals = (total[0], total[1]) if total is not None else (None, None)
    if total is not None and ctx.nan_step is not None:
        keep = tsteps < ctx.nan_step
        tsteps, tvals = tsteps[keep], tvals[keep]
    wn = sig.layer.get("weight_norm")
    ws, wv = ([], None) if wn is None else (wn.steps[:rows_before(wn.steps, ctx.nan_step)],
                                            wn.head(rows_before(wn.steps, ctx.nan_step)))
    return gradient_rules.detect_exploding(gt.steps[:cut], gt.head(cut), ws, wv, gt.layers, shapes,
                                           total_steps=tsteps, total_norm=tvals, label=ctx.label,
                                           size_matters=not gradient_rules.scale_free(ctx.optimizer))


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    if f.facts.get("lr_rose"):
        first, at, step = f.facts["lr_rose"]
        s.boost("lr_too_high", 0.9, f"the gradients grew after the LR rose from {first:.3g} to {at:.3g} "
                                    f"(from step {step}: a warm-up or schedule)")
    elif f.facts.get("before_nan"):
        if f.facts.get("growth_from_start") and ctx.lr_constant and not ctx.ratio_high:
            s.boost("bad_init", 0.85, "the growth started at the first steps with a constant LR: the initial weights "
                                      "amplify the signal")
            s.damp("lr_too_high", 0.5)
        elif f.facts.get("growth_from_start"):   # from the first steps, but with large updates
            s.boost("lr_too_high", 0.85, "the gradient norm grew from the first steps until it overflowed"
                    + (f"; the update/weight ratio was high ({ctx.update_ratio:.2g})" if ctx.update_ratio is not None
                       else ""))
        else:
            s.boost("lr_too_high", 0.85, "the gradient norm grew after a calm start with the same LR, until it "
                                         "overflowed")
    elif "unnormalized_inputs" in ctx.found:
        s.boost("input_scaling", 0.85, "the inputs are not standardised: large inputs give large gradients")
    elif not ({"divergence", "nan_inf"} & ctx.symptoms) and not ctx.ratio_high:
        s.boost("bad_init", 0.8, "gradients grow toward the input from the start while the loss does not diverge: "
                                 "weights initialised too large")
    if ctx.has_norm_layers:
        s.damp("missing_normalization", 0.3)


def settle(f, ctx):
    """Gradients that accumulate only because their parameters are not in the optimizer (whose
    zero_grad() never clears them) are the frozen_layers finding's evidence, not a finding of their own."""
    frozen = ctx.found.get("frozen_layers")
    if f.facts.get("accumulating") and frozen is not None and frozen.facts.get("no_update"):
        frozen.evidence += f.evidence
        return False
    return True


SPEC = SymptomSpec(
    id="exploding_gradients",
    looks_at="`grad_norm` / `weight_norm` of weight matrices; `sys/grad_norm` over time and before a NaN",
    fires_when="median grad/weight > 10 in >= half the records (healthy suite <= 0.3; not with Adam-like optimizers, "
               "whose updates do not scale with the gradient), or global grad norm ends "
               "100x above its early level, or grew >= 10x from its early level up to a NaN (the NaN's precursor), or "
               "grew >= 5x as a straight line in the step (R^2 >= 0.9) or without a dip at >= 90% of its steps and then "
               "sat still (< 1% a step) while the loss moved (gradients that are never zeroed)",
    detect=detect,
    priors={"lr_too_high": 0.4, "bad_init": 0.35, "missing_normalization": 0.2,
            "depth_without_skip_connections": 0.15, "numerical_instability": 0.1},
    word="gradient growth",
    adjust=adjust,
    settle=settle,
    needs=("gradients",),
)
