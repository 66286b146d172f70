"""``no_progress``: the loss never improved by 5 % of its initial level."""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ...findings import Evidence, Finding
from .. import loss_rules
from ..causes import (MOSTLY_FROZEN, loss_setup_evidence, lr_exploded, lr_from_update_ratio, mostly_frozen,
                      squashed_output_at_chance, stale_logged_loss, training_stalled, unfreeze_fix)
from ..context import MIN_LOSS_POINTS, RATIO_HIGH, RATIO_LOW
from ..series import finite_prefix, fmt, head_level, tail_level
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
    init, end = f.evidence[0].values if f.evidence and len(f.evidence[0].values or ()) == 2 else (None, None)
    if init:
        f.facts["gain"] = round((init - end) / abs(init), 6)
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
    if f.facts.get("fine_tune"):
        # a pretrained body's init and activations are not in question (LoRA's zero B is by design)
        s.damp("bad_init", 0.3)
        s.damp("activation_choice", 0.3)
    else:
        mostly_frozen(s, ctx)
    stale_logged_loss(s, f, ctx)
    if f.facts.get("constant_loss") and s.get("logged_value_stale") >= 0.9:
        return
    lr_from_update_ratio(s, ctx, boost_low=True)
    if not lr_exploded(s, f) and ctx.ratio_high:
        s.boost("lr_too_high", 0.85, f"update/weight ratio {ctx.update_ratio:.2g} is far above ~1e-3 (cs231n): the "
                                     "updates are too large to learn, not too small")
    training_stalled(s, ctx)
    fell_then_stuck(s, ctx)
    labels_unlearnable(s, f, ctx)
    if _at_chance_moving(ctx):
        squashed_output_at_chance(s, ctx)


FELL_FIRST = 1.2      # the first loss point at least this many times the level the loss then kept
MOVED_A_LOT = 1.0     # the most-updated weight matrix changed by its own size in all


def fell_then_stuck(s, ctx) -> None:
    """The loss fell in its first point(s) to a level it then kept, while the weights went on
    changing by more than their own size: steps too large to learn more than the outputs'
    average, not too small. T5 at 30x its LR sat at ln(10), uniform over the digits, from step 5
    while its weights changed 6.6x in all; "raise the LR 10x" was the advice. At its working LR
    they changed 1.4x and the loss kept falling; an AdamW run at lr 1e-4 that never got going
    changed them 7 %."""
    main = ctx.loss_curve()
    if main is None or ctx.weight_change is None or ctx.weight_change < MOVED_A_LOT:
        return
    v = np.asarray(main[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < MIN_LOSS_POINTS:
        return
    level = tail_level(v)
    if not (level > 0 and v[0] >= FELL_FIRST * level):
        return
    s.damp("lr_too_low", 0.3)
    # the loss fell at once: gradients flowed from the start, so the init and the activations are not
    # what holds it (T5 at 30x its LR listed "use He init" second)
    s.damp("bad_init", 0.3)
    s.damp("activation_choice", 0.3)
    s.boost("lr_too_high", 0.6, f"the loss fell from {fmt(v[0])} to {fmt(level)} in its first point(s) and stayed there "
                                f"while the weights went on changing ({ctx.weight_change:.0%} of their size in all): "
                                "steps too large to learn more than the outputs' average, not too small")


LABELS_TESTED = 0.5    # total relative change of the most-updated weight matrix: the model had a go at the labels


def labels_unlearnable(s, f, ctx) -> None:
    """Labels shuffled apart from their inputs (DeepDiagnosis' "accuracy not increasing"): the
    weights move at a normal rate, nothing else is wrong, and the loss stays at chance, ln(C);
    "raise the LR 10x" was the first fix."""
    classes, main = ctx.n_outputs, ctx.loss_curve()
    if classes == 1 and ctx.output_activation == "Sigmoid":
        classes = 2          # a binary classifier: chance is ln 2
    if not classes or classes < 2 or main is None or not updates_normal(ctx) or len(ctx.found) > 1:
        return
    # Weights that moved a few percent in all had no chance to learn anything, labels or not: an
    # AdamW run at lr 1e-4 stopped after 150 steps moved 7 % (its siblings at 3e-4 and up trained);
    # shuffled labels at a working LR move them 165-184 % (peers' corpus, dd_random_labels).
    if ctx.weight_change is None or ctx.weight_change < LABELS_TESTED:
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


def _at_chance_moving(ctx) -> bool:
    """The loss started and stayed at chance while the weights moved by half their size or more, at a
    normal rate (a transformer at SGD 1e-5 moved one matrix 7x its size with a median ratio of 9e-7)."""
    main = ctx.loss_curve()
    if main is None or ctx.weight_change is None or ctx.weight_change < LABELS_TESTED or ctx.ratio_low \
            or ctx.update_ratio is None or ctx.update_ratio < RATIO_LOW:
        return False
    v = np.asarray(main[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    chance = ctx.chance_level(head_level(v)) if v.size else None
    return chance is not None and abs(tail_level(v) - chance[0]) <= 0.1 * chance[0]


FINE_TUNE_GAIN = 0.01   # a fine-tune's loss improved at least this much (relative): it learns, slowly


def fixes(f, ctx):
    return [] if f.facts.get("fine_tune") else unfreeze_fix(ctx)


def _started_at_chance(ctx) -> bool:
    """The training loss started at chance, ln(C): the frozen part gave the head nothing to work
    with (a tiny BERT whose randomly initialised encoder was frozen by mistake started at ln 2 and
    stayed; a pretrained LM under LoRA starts far below its ln(vocabulary))."""
    main = ctx.sig.train_loss
    v = np.asarray(main[2], dtype=np.float64) if main is not None else np.empty(0)
    v = v[np.isfinite(v)]
    return bool(v.size) and ctx.chance_loss(head_level(v)) is not None


def settle(f, ctx):
    """A fine-tune (most parameters frozen at watch()) whose trained parameters moved at a normal
    rate and whose loss improved a little is a note: a pretrained model starts near its floor. A
    healthy 200-step LoRA run (AdamW 2e-3, validation loss down 5 %) improved 3.2 % and was told
    "raise the LR 10x"; one whose adapters the optimizer never saw moved nothing and stays a warning."""
    gain = f.facts.get("gain")
    if f.severity != "warning" or gain is None or gain < FINE_TUNE_GAIN or ctx.frozen_share < MOSTLY_FROZEN \
            or ctx.update_ratio is None or ctx.ratio_low or ctx.ratio_high or _started_at_chance(ctx):
        return True
    f.severity = "info"
    f.facts["fine_tune"] = True
    f.title += (f" (a fine-tune: {ctx.frozen_share:.0%} of the parameters frozen, the trained ones updated at a normal "
                f"rate: a pretrained model starts near its floor; judge it on the validation metric)")
    return True


PEAK_TOLERATED = 3e-2   # Adam's first steps move small weights 1-2 % (tabular MLP, tiny BERT: 0.014, 0.022) ...
SHRANK = 8.0            # ... 3-4x their median; Adagrad's shrinking steps peak 15x theirs (a slow run, not labels)


def updates_normal(ctx) -> bool:
    """Updates of a normal size: the median update/weight ratio neither far above nor far below
    ~1e-3, and no stretch above ``PEAK_TOLERATED``. Shuffled labels under Adam peaked at 0.014 and
    0.022 in the first steps and were read as "LR too low" (trial 15) under the stricter 1e-2."""
    return (ctx.update_ratio is not None and not ctx.ratio_high and not ctx.ratio_low
            and ctx.update_ratio >= RATIO_LOW      # the median matrix too (a transformer at SGD 1e-5: 8.7e-7)
            and (ctx.update_ratio_peak is None or ctx.update_ratio_peak <= RATIO_HIGH
                 or ctx.update_ratio_peak <= min(PEAK_TOLERATED, SHRANK * ctx.update_ratio)))


SPEC = SymptomSpec(
    id="no_progress",
    looks_at="training loss; `grad_norm` (exactly zero gradients), `sys/grad_norm(_post_clip)`, update/weight ratio",
    fires_when="improved < 5 % of its initial level over the whole run; exactly constant with zero gradients "
               "-> `loss_setup`, with gradients and moving weights -> `logged_value_stale`; exploded then settled "
               "at its first level -> `lr_too_high`; weights that never move because no step found a gradient: backward's "
               "cleared before the step -> `grads_cleared_before_step`, none ever -> `no_backward`; the watched optimizer "
               "never stepped -> `no_optimizer_step`; a note (info) for a fine-tune (>= 50 % of the parameters frozen at "
               "watch()) whose trained weights updated at a normal rate and whose loss improved >= 1 %",
    detect=detect,
    priors={"lr_too_low": 0.45, "bad_init": 0.3, "optimizer_setup": 0.25, "activation_choice": 0.15,
            "input_scaling": 0.1},
    word="flat loss",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss",),
)
