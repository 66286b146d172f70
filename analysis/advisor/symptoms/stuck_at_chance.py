"""``stuck_at_chance``: a model trained from scratch whose weights moved by their own size while
its loss stayed within 10 % of chance, the loss of a uniform guess.

``no_progress`` asks for 5 % of the first level; a classifier that creeps from chance to 95 % of
it has learned almost nothing. A softmax applied before ``nn.CrossEntropyLoss`` in an SGD ResNet
(trial 15, F21) went 2.30 -> 2.18 in 300 steps with its weights changed 99 % of their size (the
healthy run: 2.30 -> 0.07, accuracy 0.28 against 0.91) and read "no problems found": the
gradient through a second softmax is ~C times smaller, and SGD does not make up for it (Adam
does, and then reaches ``softmax_floor``). Labels shuffled apart from their inputs look the same
from the loss. A model at chance with tiny updates is ``small_updates``' or ``no_progress``' case,
and one whose other findings explain the stall (dropout at 90 %, dead units, a diverging LR)
is left to them.
"""
from __future__ import annotations

import math

import numpy as np

from ...findings import Evidence, Finding, Fix
from ..causes import MOSTLY_FROZEN, squashed_output_at_chance
from ..context import AT_CHANCE, MIN_LOSS_POINTS
from ..series import finite_prefix, fmt, head_level, tail_level
from ..spec import SymptomSpec
from .no_progress import LABELS_TESTED, updates_normal

NEAR = 0.1           # the end of the run still within 10 % of ln(C)
MIN_STEPS = 100      # optimizer steps: a shorter run may not have left chance yet
# a language model at its tokens' frequencies (_lm_at_token_frequencies)
MIN_VOCAB = 8        # tokens: fewer is a classifier's label set
UNIGRAM_LOW = 0.7    # ends above 70 % of ln V (shuffled targets: 78-88 %; healthy LMs ended <= 55 %, or fell)
FLAT = 0.02          # the second half of the run lowered the training and validation losses < 2 %
GAP = 0.05           # the validation loss ends within 5 % of the training loss



def detect(sig, ctx):
    if sig.live or ctx.weight_change is None or ctx.weight_change < LABELS_TESTED:
        return None
    if ctx.frozen_share >= MOSTLY_FROZEN or "no_progress" in ctx.found:
        return None
    run = ctx.run_from_chance(MIN_STEPS)
    if run is None or run[4] < (1 - NEAR) * run[5][0]:
        return _lm_at_token_frequencies(sig, ctx)
    name, steps, values, first, end, (level, classes) = run
    if end < (1 - NEAR) * level:
        return None
    return Finding(
        symptom="stuck_at_chance", severity="warning",
        title=(f"{name} is still at chance after {int(steps[-1] - steps[0])} steps: {fmt(first)} -> {fmt(end)}, "
               f"ln({classes}) = {level:.3g} is a uniform guess, while the weights changed "
               f"{ctx.weight_change:.0%} of their size"),
        first_step=int(steps[0]), last_step=int(steps[-1]),
        evidence=[
            Evidence(series=name, steps=[int(steps[0]), int(steps[-1])], values=[first, end], threshold=NEAR,
                     text=(f"{name} started at {fmt(first)} and ended at {fmt(end)} (median of the last 10 %), "
                           f"{end / level:.0%} of ln({classes}) = {level:.4g}, the loss of a uniform guess over "
                           f"{classes} classes (threshold: within {NEAR:.0%})")),
            Evidence(series="update_ratio", threshold=LABELS_TESTED, values=[round(ctx.weight_change, 4)],
                     text=(f"the most-updated weight matrix changed {ctx.weight_change:.0%} of its size over the run "
                           f"(sum of its update/weight ratios; threshold {LABELS_TESTED:.0%}): the optimizer moved the "
                           "model, and the moves did not reach the loss"))],
        facts={"classes": classes, "end_over_chance": round(end / level, 4),
               "weight_change": round(ctx.weight_change, 4)})


def _lm_at_token_frequencies(sig, ctx):
    """A language model's "chance" is not ln V but the unigram entropy: a model that learns only how
    often each token occurs. Targets that do not follow from the inputs (another row's, shuffled:
    trial 17, F1) leave it there: nanoGPT went 3.08 -> 2.58 in 24 steps, then flat to step 300 with
    its validation loss equal (2.585), and read an info early_plateau; an HF GPT-2, 4.04 -> 3.67,
    "no problems found". A warning when a token model (Embedding first, vocabulary V) started within
    AT_CHANCE of ln V, ends between UNIGRAM_LOW x ln V and ln V, fell < FLAT over the second half of
    the run, and its validation loss too, ending within GAP of the training loss (no generalisation
    gap: nothing memorised, nothing learned). Healthy LMs fell 5.6-39 % over their second half or
    ended below 0.55 ln V (trials 16 and 17)."""
    if not ctx.token_model or (ctx.n_tokens or 0) < MIN_VOCAB or sig.val_loss is None:
        return None
    main = ctx.loss_curve()
    if main is None:
        return None
    name, steps, values = main
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if len(values) < MIN_LOSS_POINTS or steps[-1] - steps[0] < MIN_STEPS:
        return None
    level, first, end = math.log(ctx.n_tokens), head_level(values), tail_level(values)
    if abs(first - level) > AT_CHANCE * level or not UNIGRAM_LOW * level <= end <= level:
        return None
    half = len(values) // 2
    width = max(1, len(values) // 20)
    mid = float(np.median(values[half - width: half + width + 1]))
    v_name, v_steps, v_values = sig.val_loss
    v_steps, v_values = finite_prefix(np.asarray(v_steps), np.asarray(v_values, dtype=np.float64))
    later = np.flatnonzero(v_steps >= steps[half])
    if len(v_values) < 3 or len(v_values) < len(sig.val_loss[2]) or not later.size or later[0] == len(v_values) - 1:
        return None
    v_mid, v_end = float(v_values[later[0]]), float(v_values[-1])
    if (mid - end) / mid >= FLAT or (v_mid - v_end) / v_mid >= FLAT or abs(v_end - end) > GAP * end:
        return None
    vocab = ctx.n_tokens
    return Finding(
        symptom="stuck_at_chance", severity="warning",
        title=(f"{name} stalled at {fmt(end)} ({end / level:.0%} of ln({vocab}) = {level:.3g}) from mid-run, and "
               f"{v_name} with it at {fmt(v_end)}: a language model at the level of the tokens' frequencies, learning "
               "nothing from their context"),
        first_step=int(steps[half]), last_step=int(steps[-1]),
        evidence=[
            Evidence(series=name, steps=[int(steps[0]), int(steps[half]), int(steps[-1])], values=[first, mid, end],
                     threshold=FLAT,
                     text=(f"{name} started at {fmt(first)} (ln({vocab}) = {level:.4g}: untrained), fell to {fmt(mid)} by "
                           f"mid-run and ended at {fmt(end)}: {(mid - end) / mid:.1%} over the second half (threshold "
                           f"{FLAT:.0%}; healthy language models fell >= 5 %), {end / level:.0%} of ln({vocab})")),
            Evidence(series=v_name, steps=[int(v_steps[later[0]]), int(v_steps[-1])], values=[v_mid, v_end],
                     threshold=GAP,
                     text=(f"{v_name} went {fmt(v_mid)} -> {fmt(v_end)} over the same half, {abs(v_end - end) / end:.1%} "
                           f"from the training loss (threshold {GAP:.0%}): no generalisation gap, the level a model "
                           "reaches from how often each token occurs (the unigram entropy)")),
            Evidence(series="update_ratio", threshold=LABELS_TESTED, values=[round(ctx.weight_change, 4)],
                     text=(f"the most-updated weight matrix changed {ctx.weight_change:.0%} of its size over the run "
                           f"(threshold {LABELS_TESTED:.0%}): the optimizer moved the model, the loss did not follow"))],
        facts={"classes": vocab, "end_over_chance": round(end / level, 4), "unigram_level": True,
               "weight_change": round(ctx.weight_change, 4)})


def fixes(f, ctx):
    if not f.facts.get("unigram_level"):
        return []
    return [Fix("check_lm_targets", "check that each row's targets are its own input ids shifted by one position "
                                    "(y = x[:, 1:]; an HF causal LM takes labels=input_ids and shifts them itself): "
                                    "decode one batch's inputs and targets side by side")]


def adjust(s, f, ctx):
    if f.facts.get("unigram_level"):
        s.boost("label_noise", 0.8, "the loss stopped where knowing only how often each token occurs leads, with the "
                                    "validation loss equal: do the targets follow from the inputs (another row's, "
                                    "shuffled, misaligned)?")
        s.damp("loss_setup", 0.3)
        s.damp("lr_too_low", 0.5)
        return
    squashed_output_at_chance(s, ctx)
    s.boost("label_noise", 0.55, f"the weights moved at a normal rate (update/weight ratio {ctx.update_ratio:.2g}) "
                                 "but the loss stayed at chance: do the labels match the inputs (shuffled "
                                 "separately, wrong column, a label offset)?")
    s.damp("lr_too_low", 0.5)


def settle(f, ctx):
    """Kept for updates of a normal size (the update ratios are known only now: tiny or huge ones are
    the LR's findings) when no other warning or error explains a model that does not leave chance."""
    return updates_normal(ctx) and not ctx.another_warns(f)


SPEC = SymptomSpec(
    id="stuck_at_chance",
    looks_at="training loss, the output size (chance level ln(C); ln 2 for one Sigmoid output), update/weight ratio "
             "summed over the run; a language model's validation loss and vocabulary",
    fires_when=f"a finished run of >= {MIN_STEPS} steps that started at chance, not mostly frozen, whose most-updated "
               f"weight matrix moved >= {LABELS_TESTED:.0%} of its size at a normal update/weight ratio (~1e-3 for SGD, ~1e-2 for Adam), and whose "
               f"loss ended within {NEAR:.0%} of chance, with no other warning (warning); a softmax or sigmoid before "
               "a loss that applies its own, under SGD or at the model's end -> `loss_setup`; a language model "
               f"(Embedding first, V >= {MIN_VOCAB} tokens) that started at ln V and ended at {UNIGRAM_LOW:.0%}-100 % of "
               f"it, its training and validation losses each lower by < {FLAT:.0%} over the run's second half and "
               f"within {GAP:.0%} of each other (the tokens' frequencies: targets that do not follow from the inputs) "
               "-> `label_noise`",
    detect=detect,
    priors={"loss_setup": 0.5, "label_noise": 0.45, "lr_too_low": 0.15},
    word="loss at chance",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss",),
)
