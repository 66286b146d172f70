"""``softmax_floor``: a cross-entropy that never goes below the floor of scores in [0, 1].

``cross_entropy`` applies log_softmax to raw scores (logits). A model that already ends in a
softmax (``F.softmax`` in ``forward()``, or ``nn.Softmax``) hands it probabilities, and the best
it can then do for C classes is a score of 1 on the right class and 0 elsewhere:
-log(e / (e + C - 1)) = log(1 + (C - 1)/e), 1.461 for 10 classes. Every batch's loss stays above
that floor; the loss creeps towards it, the accuracy can still reach ~90 %, and nothing else
looks wrong (a small CNN: 1.467 at best, validation accuracy 91 % instead of 99.6 %: "no
problems found"). A healthy run's batch losses scatter across any level they pass, below it too.
"""
from __future__ import annotations

import math

import numpy as np

from ...findings import Evidence, Finding, Fix
from ..series import finite_prefix, fmt
from ..spec import SymptomSpec

NEAR = 1.02        # the lowest batch loss came within 2 % of the floor ...
NEVER_BELOW = 0.999    # ... and none went below it (float rounding aside)
SETTLED = 1.1      # the median of the last 30 % sits within 10 % of it
FIRST = 0.1        # the first loss within 10 % of ln(C): cross-entropy over C outputs
NEAR_SEEN = 1.1    # with an nn.Softmax output module: the lowest within 10 % of the floor ...
SETTLED_SEEN = 1.2     # ... and the last 30 % within 20 %
MIN_POINTS = 50


def floor_for(classes: int) -> float:
    """The lowest cross-entropy of scores in [0, 1] over ``classes`` classes."""
    return math.log(1.0 + (classes - 1) / math.e)


def detect(sig, ctx):
    classes = ctx.n_outputs
    if sig.train_loss is None or not classes or classes < 2:
        return None
    name, steps, values = sig.train_loss
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if len(values) < MIN_POINTS or abs(values[0] - math.log(classes)) > FIRST * math.log(classes):
        return None
    floor = floor_for(classes)
    low = float(values.min())
    tail = values[int(0.7 * len(values)):]
    level = float(np.median(tail))
    # a Softmax module at the model's end is seen: a loss that stays above the floor needs less
    # to tell (an SGD MLP with nn.Softmax before CrossEntropyLoss: lowest 3.3 % above it)
    near, settled = (NEAR_SEEN, SETTLED_SEEN) if ctx.output_activation == "Softmax" else (NEAR, SETTLED)
    if not (NEVER_BELOW * floor <= low <= near * floor and level <= settled * floor):
        return None
    i_low = int(np.argmin(values))
    return Finding(
        symptom="softmax_floor", severity="warning", first_step=int(steps[0]), last_step=int(steps[-1]),
        title=f"{name} never went below {floor:.4g}, the lowest cross-entropy that probabilities can reach over "
              f"{classes} classes: is the output softmaxed before the loss?",
        evidence=[Evidence(
            series=name, threshold=floor, steps=[int(steps[i_low])], values=[round(low, 5), round(level, 5)],
            text=(f"lowest {name} {fmt(low)} at step {int(steps[i_low])}, {low / floor - 1:.2%} above "
                  f"log(1 + (C-1)/e) = {floor:.4g} for C = {classes} outputs (scores in [0, 1] cannot go lower); "
                  f"median of the last 30 % {fmt(level)}; the first loss {fmt(float(values[0]))} is ln({classes}) = "
                  f"{math.log(classes):.4g}, a cross-entropy over {classes} outputs"))],
        facts={"floor": floor, "classes": classes, "lowest": low},
    )


def adjust(s, f, ctx):
    act = ctx.output_activation
    s.boost("loss_setup", 0.9, "the scores reaching the loss are probabilities"
                               + (f" (the model ends in {act})" if act in ("Softmax", "Sigmoid") else
                                  " (a softmax in forward(), e.g. F.softmax, before cross_entropy?)")
                               + ": cross_entropy applies log_softmax itself and wants raw logits")


def fixes(f, ctx):
    return [Fix("logits_to_loss", "remove the softmax at the end of the model (F.softmax / nn.Softmax): hand "
                                  "cross_entropy the raw scores; apply softmax only where probabilities are reported")]


SPEC = SymptomSpec(
    id="softmax_floor",
    looks_at="training loss, the number of outputs (rows of the last weight matrix)",
    fires_when=f"the first loss is within {FIRST:.0%} of ln(C) (cross-entropy over C outputs), no loss goes below "
               f"log(1 + (C-1)/e) (1.461 for C = 10: the floor of scores in [0, 1]), the lowest comes within "
               f"{NEAR - 1:.0%} of it and the median of the last 30 % within {SETTLED - 1:.0%} ({MIN_POINTS}+ points; with an "
               f"nn.Softmax output module {NEAR_SEEN - 1:.0%} and {SETTLED_SEEN - 1:.0%}) (warning)",
    detect=detect,
    priors={"loss_setup": 0.6},
    word="loss floor",
    adjust=adjust,
    fixes=fixes,
    needs=("loss",),
)
