"""``no_progress``: the loss never improved by 5 % of its initial level."""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ...findings import Evidence, Finding, Fix
from .. import loss_rules
from ..causes import (MOSTLY_FROZEN, loss_setup_evidence, lr_exploded, lr_from_update_ratio, mostly_frozen,
                      squashed_output_at_chance, stale_logged_loss, training_stalled, unfreeze_fix)
from ..context import MIN_LOSS_POINTS, RATIO_HIGH, RATIO_LOW, config_clip
from ..contrastive import contrastive_chance
from ..update_scale import adaptive, peak_tolerated, too_large_text
from ..series import finite_prefix, fmt, head_level, tail_level
from ..signals import main_loss
from ..lr_groups import zero_lr_groups, zero_lr_text
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
        zero = zero_lr_groups(sig)    # the other groups (biases, norms) still train: no "cannot improve"
        f = Finding(symptom="no_progress", severity="warning", title=f"{name} cannot improve: {why}" if not zero else
                    f"{name}: {zero_lr_text(zero)}, the weight matrices moved {ctx.weight_change:.2%} in all",
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
    pinned = pinned_grad_norm(sig)
    if pinned is not None:
        level, share, clip = pinned
        why = (f"the run's clipping norm is {fmt(clip)}: clipping was active at every one of these steps" if clip else
               "a norm that does not move with the loss or the data: clipped at every step")
        f.evidence.append(Evidence(
            series=SYS_GRAD_NORM, values=[level], threshold=PINNED_SHARE,
            text=(f"the global gradient norm stays within {PINNED_BAND:.0%} of {fmt(level)} at {share:.0%} of the steps; "
                  f"{why} (each step has the same size whatever the gradient; a gradient never cleared grows "
                  "until it is cut there)")))
        f.facts["pinned_grad_norm"] = round(level, 6) if clip else None
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
    first = head_level(v) if len(v) else float("nan")
    chance = contrastive_chance(sig, first) if ctx.chance_level(first) is None else None
    if chance is not None:
        f.facts["contrastive"] = {"level": round(chance[0], 5), "k": chance[1], "words": chance[2]}
    return f


def adjust(s, f, ctx):
    ended_higher(s, f)
    graph_kept(s, ctx)
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
        s.boost("lr_too_high", 0.85, f"{too_large_text(ctx)}: the updates are too large to learn, not too small")
    training_stalled(s, ctx)
    if _trainable_never_moved(ctx):
        s.damp("bad_init", 0.5)     # frozen_layers shows why they never moved: no init keeps weights still
    fell_then_stuck(s, ctx)
    labels_unlearnable(s, f, ctx)
    contrastive_bounded(s, f, ctx)
    if _at_chance_moving(ctx):
        squashed_output_at_chance(s, ctx)


PINNED_SHARE = 0.5   # steps whose global gradient norm sits within PINNED_BAND of its median
PINNED_BAND = 0.03


def pinned_grad_norm(sig) -> tuple[float, float, float | None] | None:
    """(median, share, clip) when ``sys/grad_norm`` stays within 3 % of its median at >= half of >= 10
    steps (``clip``: the config's clipping norm when the median sits at 0.95-1.3x it, else None). A
    gradient norm that does not move with the loss or the data: clipped at every step. A word LM
    without zero_grad() sat at 0.245-0.255 around its clip of 0.25 (the carried, clipped gradient
    dominating each new one), its healthy twin spread over 0.05-0.19 (trial 18 U12)."""
    found = sig.scalars.get(SYS_GRAD_NORM)
    if found is None:
        return None
    v = np.asarray(found[1], np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) < 10:
        return None
    level = float(np.median(v))
    share = float(np.mean(np.abs(v - level) <= PINNED_BAND * level))
    if share < PINNED_SHARE:
        return None
    clip = config_clip(sig.meta.get("config"))
    # the norm backward left: the carried gradient, cut to the clip, plus the batch's own
    return level, share, clip if clip is not None and 0.95 * clip <= level <= 1.3 * clip else None


def graph_kept(s, ctx) -> None:
    """Steps that take longer and longer (step_time_growth): backward runs through the earlier
    iterations' graph, whose gradients reach the weights again; not steps too small (a word LM whose
    hidden state was never detached read "raise the learning rate 10x" after 45 steps: trial 18 U7)."""
    g = ctx.found.get("step_time_growth")
    if g is None:
        return
    s.score.pop("lr_too_low", None)
    s.boost("graph_retained", 0.75, f"each step took longer than the last ({fmt(g.facts['early'])} s -> "
                                    f"{fmt(g.facts['late'])} s, see step_time_growth): every backward runs through the "
                                    "earlier iterations' graph again")


ROSE = 0.03    # the loss ended this much (relative) above its start: worse, not flat within its noise


def ended_higher(s, f) -> None:
    """A loss that ended clearly higher than it started (>= 3 %) was not held back by steps too
    small: a larger LR moves it further the wrong way. A word LM whose model.zero_grad() was dropped
    got 5.6 % worse and read "lr too low, raise the learning rate 10x" (trial 18 U12); a transformer
    at a tenth of its LR sits flat within +-1.5 %."""
    gain = f.facts.get("gain")
    if gain is not None and gain <= -ROSE:
        s.score.pop("lr_too_low", None)
        level = f.facts.get("pinned_grad_norm")
        if level:
            s.boost("optimizer_setup", 0.6, f"the loss got worse while the global gradient norm stayed at {fmt(level)}, "
                                            "the clip, step after step: gradients that accumulate across steps (is "
                                            "zero_grad() or p.grad = None called every step?) are cut there")


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
    main = ctx.loss_curve()
    classes = _classes(ctx, main)
    # nothing else wrong that would hold the loss at chance; inputs off unit scale are no such thing when
    # the weights moved by their own size (a GCN's row-normalised features, RMS 0.018, train at the same
    # LR with the labels aligned; misaligned, they read "input scaling" first: trial 14)
    # nor a mostly frozen model: its trained head has nothing to learn from (a tiny BERT whose random
    # encoder was frozen by mistake sat at ln 2)
    if not classes or classes < 2 or main is None or not updates_normal(ctx) \
            or set(ctx.found) - {"no_progress", "unnormalized_inputs"} or ctx.frozen_share >= MOSTLY_FROZEN:
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


OUT_FIRST = {"Linear", "LazyLinear", "Bilinear", "Embedding", "Conv1d", "Conv2d", "Conv3d"}   # weight (out, in, ...)
EXACT_CHANCE = 0.05    # a first loss this close to ln(C) of a custom layer's last dimension


def _classes(ctx, main) -> int | None:
    """The number of classes whose chance level ln(C) the loss is judged against: the output layer's
    size, 2 for one Sigmoid output, or the last dimension of a custom output layer's own matrix when
    the first loss sits at its ln(C) (a GCN's GraphConv kernel is (in, out): 16 x 7, first loss
    1.946 = ln 7; its output size read as 16)."""
    classes = ctx.n_outputs
    if classes == 1 and ctx.output_activation == "Sigmoid":
        return 2          # a binary classifier: chance is ln 2
    weights = [p for p in ctx.sig.params if len(p.shape) == 2]
    if main is None or not weights:
        return classes
    last, types = weights[-1], {m.name: m.type for m in ctx.sig.modules}
    v = np.asarray(main[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    other = int(last.shape[1])
    if v.size and types.get(last.module) not in OUT_FIRST and other >= 2 and other != classes \
            and abs(head_level(v) - math.log(other)) <= EXACT_CHANCE * math.log(other):
        return other
    return classes


def contrastive_bounded(s, f, ctx) -> None:
    """A contrastive loss (NT-Xent/InfoNCE: see contrastive.py) that started at its chance level,
    ln(K), and stayed there while the weights moved by their own size at a normal rate: the logits
    cannot separate the positive from the K - 1 others. A temperature that bounds the cosine
    similarities' logits to +-1/T, or views that share nothing; a 10x LR changes neither."""
    c, main = f.facts.get("contrastive"), ctx.loss_curve()
    if not c or main is None or not updates_normal(ctx) or ctx.weight_change is None \
            or ctx.weight_change < LABELS_TESTED:
        return
    v = np.asarray(main[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    end = tail_level(v) if v.size else float("nan")
    if not abs(end - c["level"]) <= 0.1 * c["level"]:
        return
    f.facts["contrastive_bounded"] = True
    s.boost("loss_setup", 0.75, f"the loss started at ln({c['k']}) = {c['level']:.3g}, a contrastive loss's chance "
                                f"level over {c['words']}, and ended at {fmt(end)} while the weights moved "
                                f"{ctx.weight_change:.0%} of their size at a normal rate (update/weight ratio "
                                f"{ctx.update_ratio:.2g}): the logits cannot single out the positive pair. Cosine "
                                "similarities lie in [-1, 1], so a temperature T bounds the logits to +-1/T and the "
                                "loss above ln(1 + (K - 1) e^(-2/T)) (T = 5: 5.14 for K = 255)")
    s.damp("lr_too_low", 0.3)
    s.damp("bad_init", 0.5)


TEMPERATURE_FIX = Fix("contrastive_temperature",
                      "check the contrastive loss's temperature: logits = cosine similarity / T, and T = 0.05-0.5 "
                      "is usual (SimCLR 0.1-0.5, MoCo 0.07, CLIP learns it from 0.07); at T >= 1 the loss cannot "
                      "fall far below its start. Then check that the two views of a pair come from the same sample")


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
    if f.facts.get("contrastive_bounded"):
        return [TEMPERATURE_FIX]
    if f.facts.get("fine_tune") or _trainable_never_moved(ctx):
        return []
    return unfreeze_fix(ctx)


def _trainable_never_moved(ctx) -> bool:
    """frozen_layers proves why the parameters left trainable never moved (an LR of exactly 0 for
    their group, a gradient never applied, none reaching them): "unfreeze the frozen ones" (a LoRA's
    base, frozen on purpose) would not help; its fixes come first (trial 18 U1)."""
    frozen = ctx.found.get("frozen_layers")
    return frozen is not None and frozen.severity == "warning" and bool(
        frozen.facts.get("zero_lr_groups") or frozen.facts.get("no_update") or frozen.facts.get("cut_prefix"))


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


SHRANK = 8.0   # SGD & co: a peak 3-4x the median is the first steps; Adagrad's shrinking steps peak 15x theirs


def updates_normal(ctx) -> bool:
    """Updates of a normal size for the optimizer (update_scale): the median update/weight ratio
    neither far above nor far below the usual, and no stretch above ``peak_tolerated``. Shuffled
    labels under Adam peaked at 0.014 and 0.022 in the first steps and were read as "LR too low"
    (trial 15) under the stricter 1e-2; an Adam step is ~lr per element, so its first steps are
    lr / the weights' RMS: 0.095 for a GCN at Adam 1e-2 (Xavier weights of RMS ~0.1), whose labels,
    misaligned to the nodes, read "lr too high" (trial 14)."""
    peak = ctx.update_ratio_peak
    if adaptive(ctx.optimizer):
        tolerated = peak is None or peak <= peak_tolerated(ctx.optimizer)
    else:
        tolerated = peak is None or peak <= RATIO_HIGH or peak <= min(peak_tolerated(ctx.optimizer),
                                                                         SHRANK * ctx.update_ratio)
    return (ctx.update_ratio is not None and not ctx.ratio_high and not ctx.ratio_low
            and ctx.update_ratio >= RATIO_LOW      # the median matrix too (a transformer at SGD 1e-5: 8.7e-7)
            and tolerated)


SPEC = SymptomSpec(
    id="no_progress",
    looks_at="training loss; `grad_norm` (exactly zero gradients), `sys/grad_norm(_post_clip)`, update/weight ratio, "
             "`sys/batch_size`",
    fires_when="improved < 5 % of its initial level over the whole run; exactly constant with zero gradients "
               "-> `loss_setup`, with gradients and moving weights -> `logged_value_stale`; exploded then settled "
               "at its first level -> `lr_too_high`; weights that never move because no step found a gradient: backward's "
               "cleared before the step -> `grads_cleared_before_step`, none ever -> `no_backward`; the watched optimizer "
               "never stepped -> `no_optimizer_step`; a contrastive loss (first loss within 2 % of ln(K), K = B - 1, B or 2B - 1 "
               "for a batch of B, `sys/batch_size`) that stayed at ln(K) while the weights moved >= 50 % of their size at a "
               "normal update/weight ratio -> `loss_setup` (a temperature that bounds the logits); a note (info) for a "
               "fine-tune (>= 50 % of the parameters frozen at watch()) whose trained weights updated at a normal rate and "
               "whose loss improved >= 1 %",
    detect=detect,
    priors={"lr_too_low": 0.45, "bad_init": 0.3, "optimizer_setup": 0.25, "activation_choice": 0.15,
            "input_scaling": 0.1},
    word="flat loss",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss",),
)
