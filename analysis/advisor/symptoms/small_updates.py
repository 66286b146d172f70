"""``small_updates``: a model trained from scratch whose weights barely moved over a whole run,
while its loss fell only a little from the untrained level.

An LR far too low for the recipe passes the curve rules: HF's GPT-2 recipe at 1e-5 (100x below
its 1e-3) fell 7.9 % in 300 steps, enough for ``no_progress``'s 5 %, and its cosine schedule
flattened the end, so ``slow_convergence`` stayed quiet: "no problems found" (trial 14, M4).
What gave it away is how far the weights went: the most-updated weight matrix changed 14 % of
its size in all, against 83-426 % for every healthy run of the scenario grid, the peers' corpus
and the real code tried (T5, GPT-2, GCN, timm-style ResNet), while the planted low-LR runs
moved 0.5-44 %. A model that starts trained (a fine-tune: most parameters frozen, or a loss far
below chance from its first step) moves its weights little by design, so only a run that started
at chance, ln(C), is judged; one with a regression loss has no chance level and is not judged.
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from ..causes import MOSTLY_FROZEN, lr_from_update_ratio, settings_slow_training
from ..context import AT_CHANCE
from ..series import fmt, smooth_curve
from ..spec import SymptomSpec

MOVED = 0.5            # the most-updated weight matrix changed less than this share of its size in all
FELL = 0.25            # ... while the loss fell less than this share of its first level
STILL = 0.45           # ... and still fell this many times as fast per unit of LR at the end as before
MIN_STEPS = 100        # optimizer steps: a short run's weights have not had the time to move

# Findings that explain small updates better: the weights are held back by their own cause.
EXPLAINED_BY = {"nan_inf", "divergence", "no_progress", "vanishing_gradients", "exploding_gradients",
                "gradients_not_cleared", "warmup_unfinished", "dead_units", "saturated_activations", "frozen_layers",
                "lost_updates", "eval_mode_training", "strong_dropout"}


def detect(sig, ctx):
    if sig.live or ctx.weight_change is None or ctx.weight_change >= MOVED:
        return None
    if EXPLAINED_BY & {s for s, f in ctx.found.items() if f.severity != "info"}:
        return None
    run = None if ctx.frozen_share >= MOSTLY_FROZEN else ctx.run_from_chance(MIN_STEPS)
    if run is None:
        return None
    name, steps, values, first, end, chance = run
    if first <= 0 or (first - end) >= FELL * first:
        return None
    pace = _pace_per_lr(steps, values, ctx)
    if pace is None or pace[1] <= 0 or pace[1] < STILL * pace[0]:
        return None
    return Finding(
        symptom="small_updates", severity="warning",
        title=(f"the weights barely moved: {ctx.weight_change:.0%} of their size in {int(steps[-1] - steps[0])} steps, "
               f"and {name} fell only {(first - end) / first:.0%} ({fmt(first)} -> {fmt(end)})"),
        first_step=int(steps[0]), last_step=int(steps[-1]),
        evidence=[
            Evidence(series="update_ratio", threshold=MOVED, values=[round(ctx.weight_change, 4)],
                     text=(f"the most-updated weight matrix changed {ctx.weight_change:.1%} of its size over the whole "
                           f"run (sum of its update/weight ratios; threshold {MOVED:.0%}): healthy runs from scratch "
                           "move theirs by about their own size or more")),
            Evidence(series=name, steps=[int(steps[0]), int(steps[-1])], values=[first, end], threshold=FELL,
                     text=(f"{name} started at {fmt(first)}, chance level for {chance[1]} classes (ln {chance[1]} = "
                           f"{fmt(chance[0])}): the model started untrained, and ended at {fmt(end)}, "
                           f"{(first - end) / first:.1%} lower (threshold {FELL:.0%})")),
            Evidence(series=name, threshold=STILL,
                     text=(f"over the last quarter of the LR the run spent (sum of sys/lr) {name} fell {fmt(pace[1])}, "
                           f"{pace[1] / pace[0]:.2g}x its fall over the quarter before (threshold {STILL:g}x): it was "
                           "still falling when the run ended, not levelling off") if pace[0] > 0 else
                          (f"over the last quarter of the LR the run spent (sum of sys/lr) {name} fell {fmt(pace[1])}, "
                           "more than over the quarter before: still falling when the run ended"))],
        facts={"weight_change": round(ctx.weight_change, 6), "fell": round((first - end) / first, 6),
               "classes": chance[1]})


def _pace_per_lr(steps, values, ctx):
    """(fall over the third quarter, fall over the last quarter) of the smoothed loss, quarters of
    the LR summed over the run rather than of its steps: a cosine decay to 0 flattens the end of
    any curve by steps (GPT-2 at 1e-5 still fell 0.78x as fast per unit of LR at its end), while
    a model at its floor levels off per unit of LR too (a small transformer at a working LR: 0.25x,
    and 10x its LR did not lower its validation loss). None for a curve too short to smooth."""
    s_steps, smooth = smooth_curve(steps, values)
    if len(smooth) < 8:
        return None
    lr = np.ones(len(s_steps))
    if ctx.lr_values is not None and len(ctx.lr_values) >= 2:
        lr = np.interp(s_steps, ctx.lr_steps, ctx.lr_values)
    spent = np.cumsum(lr)
    if spent[-1] <= 0:
        return None
    at = np.interp((0.5, 0.75, 1.0), spent / spent[-1], smooth)
    return float(at[0] - at[1]), float(at[1] - at[2])


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_low=True)
    settings_slow_training(s, ctx)


SPEC = SymptomSpec(
    id="small_updates",
    looks_at="update/weight ratio summed over the run, training loss, the output size (chance level ln(C))",
    fires_when=f"a finished run of >= {MIN_STEPS} steps that started at chance (first loss within "
               f"{AT_CHANCE:.0%} of ln(C)), not mostly frozen, whose most-updated weight matrix moved < {MOVED:.0%} "
               f"of its size in all while the loss fell < {FELL:.0%}, and still fell >= {STILL:g}x as fast per unit of LR "
               "(sum of sys/lr) over the last quarter as over the quarter before, with no other warning that explains "
               "it (warning)",
    detect=detect,
    priors={"lr_too_low": 0.8, "optimizer_setup": 0.2},
    word="weight change",
    adjust=adjust,
    needs=("loss",),
)
