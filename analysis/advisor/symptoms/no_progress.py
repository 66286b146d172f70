"""``no_progress``: the loss never improved by 5 % of its initial level."""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ...findings import Evidence, Finding
from .. import loss_rules
from ..causes import loss_setup_evidence, lr_exploded, lr_from_update_ratio, stale_logged_loss, training_stalled
from ..context import MIN_LOSS_POINTS
from ..series import finite_prefix, fmt, tail_level
from ..signals import main_loss
from ..spec import SymptomSpec


def detect(sig, ctx):
    main = main_loss(sig)
    if main is None or sig.rewards:   # a reinforcement-learning run's losses follow the returns
        return None
    name, s, v = main
    f = loss_rules.detect_no_progress(s, v, series=name, min_points=MIN_LOSS_POINTS)
    if f is None and (ctx.zero_gradients or ctx.weights_static) and len(v) >= MIN_LOSS_POINTS:
        # The weights (hardly) change, so whatever the loss does is batch-to-batch noise: no progress.
        why = ("every gradient is exactly 0, the weights never change" if ctx.zero_gradients else
               f"the weights moved {ctx.weight_change:.2%} in all")
        f = Finding(symptom="no_progress", severity="warning", title=f"{name} cannot improve: {why}",
                    first_step=int(s[0]), last_step=int(s[-1]))
    if f is None:
        return None
    if ctx.weights_static and not ctx.zero_gradients:
        f.evidence.append(Evidence(
            series="update_ratio", threshold=0.01,
            text=(f"the most-updated weight matrix moved {ctx.weight_change:.2%} of its size over the whole run "
                  "(sum of its update/weight ratios; threshold 1 %): the loss's ups and downs are the batches'"),
            values=[round(ctx.weight_change, 6)]))
    f.facts["zero_gradients"] = ctx.zero_gradients
    if ctx.zero_gradients:
        f.evidence.append(Evidence(series=SYS_GRAD_NORM, threshold=0.0,
                                   text="every recorded gradient is exactly 0: the loss does not depend on the "
                                        "weights, its changes are the batches'"))
    s, v = finite_prefix(*loss_rules.as_series(s, v))
    level = float(np.median(v))
    f.facts["constant_loss"] = bool(np.ptp(v) <= 1e-7 * max(1.0, abs(level)))
    loss_rules.add_explosion_evidence(f, name, s, v)
    if f.facts["constant_loss"]:
        f.evidence.append(Evidence(series=name, text=f"{name} is exactly {fmt(level)} at every step",
                                   steps=[int(s[0]), int(s[-1])], values=[level, level]))
    return f


def adjust(s, f, ctx):
    if loss_setup_evidence(s, ctx):
        return
    stale_logged_loss(s, f, ctx)
    if f.facts.get("constant_loss") and s.get("logged_value_stale") >= 0.9:
        return
    lr_from_update_ratio(s, ctx, boost_low=True)
    if not lr_exploded(s, f) and ctx.ratio_high:
        s.boost("lr_too_high", 0.85, f"update/weight ratio {ctx.update_ratio:.2g} is far above ~1e-3 (cs231n): the "
                                     "updates are too large to learn, not too small")
    training_stalled(s, ctx)
    labels_unlearnable(s, f, ctx)


def labels_unlearnable(s, f, ctx) -> None:
    """Labels shuffled apart from their inputs (DeepDiagnosis' "accuracy not increasing"): the
    weights move at a normal rate, nothing else is wrong, and the loss stays at chance, ln(C);
    "raise the LR 10x" was the first fix."""
    classes, main = ctx.n_outputs, ctx.loss_curve()
    if not classes or classes < 2 or main is None or not ctx.updates_stayed_normal or len(ctx.found) > 1:
        return
    v = np.asarray(main[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    chance = math.log(classes)
    if not v.size or abs(tail_level(v) - chance) > 0.1 * chance:
        return
    s.boost("label_noise", 0.7, f"the weights moved at a normal rate (update/weight ratio {ctx.update_ratio:.2g}) but "
                                f"the loss stayed at chance, ln({classes}) = {chance:.3g}: do the labels match the inputs "
                                "(shuffled separately, wrong column, a label offset)?")
    s.damp("lr_too_low", 0.5)


SPEC = SymptomSpec(
    id="no_progress",
    looks_at="training loss; `grad_norm` (exactly zero gradients), `sys/grad_norm(_post_clip)`, update/weight ratio",
    fires_when="improved < 5 % of its initial level over the whole run; exactly constant with zero gradients "
               "-> `loss_setup`, with gradients and moving weights -> `logged_value_stale`; exploded then settled "
               "at its first level -> `lr_too_high`; weights that never move because no step found a gradient: backward's "
               "cleared before the step -> `grads_cleared_before_step`, none ever -> `no_backward`; the watched optimizer "
               "never stepped -> `no_optimizer_step`",
    detect=detect,
    priors={"lr_too_low": 0.45, "bad_init": 0.3, "optimizer_setup": 0.25, "activation_choice": 0.15,
            "input_scaling": 0.1},
    word="flat loss",
    adjust=adjust,
    needs=("loss",),
)
