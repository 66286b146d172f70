"""``divergence``: the loss level rose back well above its best and stayed there."""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from .. import loss_rules
from ..causes import lr_from_update_ratio
from ..context import MIN_LOSS_POINTS
from ..series import fmt, rounded
from ..spec import SymptomSpec


SHORT_BLOWUP = 100.0    # a curve too short for the rules: the last loss >= this x its first and its best
MIN_SHORT = 3


def detect(sig, ctx):
    f = ctx.on_loss_curve(loss_rules.detect_divergence) or _short_blowup(ctx)
    if f is not None:
        f.facts["before_nan"] = ctx.nan_step is not None
        rose = ctx.lr_rise_before(f.first_step if f.first_step is not None else 0)
        if rose is None and f.evidence and len(f.evidence[0].steps) >= 2:
            rose = ctx.lr_rise_before(f.evidence[0].steps[1])       # the step the rise crossed the threshold
        f.facts["lr_rose"] = rose
    return f


def _short_blowup(ctx):
    """A loss curve with fewer points than the curve rules need (a full-batch LBFGS run logs one
    per optimizer step: pytorch/examples' time_sequence_prediction has 15) whose last value is
    orders of magnitude above its first and its best: 6.9e-05 -> 4.7e+25 in 8 steps read as
    "no problems found"."""
    main = ctx.loss_curve()
    if main is None:
        return None
    name, steps, values = main
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    if not MIN_SHORT <= len(values) < MIN_LOSS_POINTS or np.any(values <= 0):
        return None
    best = int(np.argmin(values[:-1]))
    first, low, last = float(values[0]), float(values[best]), float(values[-1])
    if last < SHORT_BLOWUP * first or last < SHORT_BLOWUP * low:
        return None
    return Finding(
        symptom="divergence", severity="error", first_step=int(steps[best]), last_step=int(steps[-1]),
        title=f"{name} blew up: {fmt(low)} at step {int(steps[best])}, {fmt(last)} at step {int(steps[-1])} "
              f"({last / low:.3g}x) in a run of {len(values)} points",
        evidence=[Evidence(
            series=name, threshold=SHORT_BLOWUP, steps=[int(steps[0]), int(steps[best]), int(steps[-1])],
            values=rounded([first, low, last]),
            text=(f"{name} went from {fmt(first)} (first)"
                  + (f" to its best {fmt(low)} at step {int(steps[best])}" if best else ", its best,")
                  + f" and ended at {fmt(last)}, {last / low:.3g}x its best (threshold {SHORT_BLOWUP:g}x: too few points "
                  f"({len(values)} < {MIN_LOSS_POINTS}) for the curve rules, so only a blow-up this large is judged)"))],
        facts={"short_run": True},
    )


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    if f.facts.get("lr_rose"):
        first, at, step = f.facts["lr_rose"]
        s.boost("lr_too_high", 0.9, f"the loss rose after the LR went from {first:.3g} to {at:.3g} (above "
                                    f"twice its first value from step {step})")


SPEC = SymptomSpec(
    id="divergence",
    looks_at="training loss (smoothed: bin median + running median)",
    fires_when="level rises back by > 50 % of the progress made (`rise_frac`) and stays there for the last 10 % "
               f"of the run; on a curve of {MIN_SHORT} to {MIN_LOSS_POINTS - 1} points (too few for the curve rules), "
               f"the last loss >= {SHORT_BLOWUP:g}x its first and its best (error)",
    detect=detect,
    priors={"lr_too_high": 0.6, "numerical_instability": 0.2, "input_scaling": 0.15, "optimizer_setup": 0.1},
    word="divergence",
    adjust=adjust,
    needs=("loss",),
)
