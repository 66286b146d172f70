"""``divergence``: the loss level rose back well above its best and stayed there."""
from __future__ import annotations

from .. import loss_rules
from ..causes import lr_from_update_ratio
from ..spec import SymptomSpec


def detect(sig, ctx):
    f = ctx.on_loss_curve(loss_rules.detect_divergence)
    if f is not None:
        f.facts["before_nan"] = ctx.nan_step is not None
        rose = ctx.lr_rise_before(f.first_step if f.first_step is not None else 0)
        if rose is None and f.evidence and len(f.evidence[0].steps) >= 2:
            rose = ctx.lr_rise_before(f.evidence[0].steps[1])       # the step the rise crossed the threshold
        f.facts["lr_rose"] = rose
    return f


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
               "of the run",
    detect=detect,
    priors={"lr_too_high": 0.6, "numerical_instability": 0.2, "input_scaling": 0.15, "optimizer_setup": 0.1},
    word="divergence",
    adjust=adjust,
    needs=("loss",),
)
