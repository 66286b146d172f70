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

from ...findings import Evidence, Finding
from ..causes import MOSTLY_FROZEN, squashed_output_at_chance
from ..series import fmt
from ..spec import SymptomSpec
from .no_progress import LABELS_TESTED, updates_normal

NEAR = 0.1           # the end of the run still within 10 % of ln(C)
MIN_STEPS = 100      # optimizer steps: a shorter run may not have left chance yet



def detect(sig, ctx):
    if sig.live or ctx.weight_change is None or ctx.weight_change < LABELS_TESTED:
        return None
    if ctx.frozen_share >= MOSTLY_FROZEN or "no_progress" in ctx.found:
        return None
    run = ctx.run_from_chance(MIN_STEPS)
    if run is None:
        return None
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


def adjust(s, f, ctx):
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
             "summed over the run",
    fires_when=f"a finished run of >= {MIN_STEPS} steps that started at chance, not mostly frozen, whose most-updated "
               f"weight matrix moved >= {LABELS_TESTED:.0%} of its size at a normal update/weight ratio (~1e-3 for SGD, ~1e-2 for Adam), and whose "
               f"loss ended within {NEAR:.0%} of chance, with no other warning (warning); a softmax or sigmoid before "
               "a loss that applies its own, under SGD or at the model's end -> `loss_setup`",
    detect=detect,
    priors={"loss_setup": 0.5, "label_noise": 0.45, "lr_too_low": 0.15},
    word="loss at chance",
    adjust=adjust,
    settle=settle,
    needs=("loss",),
)
