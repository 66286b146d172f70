"""Inputs far off unit scale rank first among the causes of a blow-up.

``unnormalized_inputs`` puts ``input_scaling`` among every finding's causes at 0.6; a divergence
then read "lr too high (90%)" first from the update/weight ratio (trial 15, F5: pytorch/examples'
time_sequence_prediction with its sine x100 under LBFGS at the example's own lr 0.8, which trains
unit-scale data to 8.6e-6). Inputs 100x off scale every gradient and curvature of the first layer
by that much: they are the cause to fix first. Under LBFGS any badly scaled input counts: its
steps follow the curvature those inputs set (cs231n's update/weight ratio of ~1e-3 is a rule for
first-order optimizers).
"""
from __future__ import annotations

from .series import fmt
from .spec import Scores

FAR_OFF = 100.0   # the inputs' RMS or largest |value| at least this (standardised: ~1, pixels 0-255: ~100+)
# Findings of a blow-up, whose priors include input scaling (a slow or overfitting run's are not moved).
BLOW_UPS = {"divergence", "exploding_gradients", "nan_inf", "loss_spikes", "loss_oscillation", "loss_blowup"}
SECOND_ORDER = {"LBFGS"}


def inputs_far_off(s: Scores, finding, ctx) -> None:
    """Raise ``input_scaling`` above the LR (0.9 at most) for a blow-up when the inputs are
    FAR_OFF from unit scale, or badly scaled at all under LBFGS."""
    f = ctx.found.get("unnormalized_inputs")
    if f is None or finding.symptom not in BLOW_UPS or f.severity == "info" or f.facts.get("tiny"):
        return
    peak = f.facts.get("peak", f.facts.get("rms", 0.0))
    optimizer = str((ctx.sig.meta.get("optimizer") or {}).get("type", ""))
    if optimizer in SECOND_ORDER:
        s.boost("input_scaling", 0.95, f"the inputs reach {fmt(peak)} (see unnormalized_inputs), and {optimizer}'s "
                                       "steps follow the curvature those inputs set: standardise them before "
                                       "tuning its lr")
    elif peak >= FAR_OFF:
        s.boost("input_scaling", 0.95, f"the inputs reach {fmt(peak)}, {peak:.0f}x unit scale (see "
                                       "unnormalized_inputs): the first layer's gradients and steps scale with them")
