"""``saturated_activations``: sigmoid/tanh-family outputs sitting at their bounds."""
from __future__ import annotations

from .. import activation_rules
from ..causes import output_only, inputs_unscaled, lr_from_update_ratio
from ..context import RATIO_HIGH
from ..spec import SymptomSpec
from ._cut import types_of
from .gan_losses_vanish import gan_output_saturation


def detect(sig, ctx):
    v = sig.layer.get("act_frac_saturated")
    if v is None or ctx.degenerate_inputs:
        return None
    return activation_rules.detect_saturation(v.steps, v, v.layers, types_of(sig, v.layers), label=ctx.label)


BLOWN = {"divergence", "loss_oscillation", "loss_spikes", "nan_inf", "exploding_gradients", "loss_blowup"}


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx)
    inputs_unscaled(s, ctx, 0.75)
    if "unnormalized_inputs" in ctx.found:
        return
    if output_only(f, ctx) and gan_output_saturation(s, ctx):
        return
    if output_only(f, ctx):
        # a Sigmoid after the last layer of a regression over [0, 300], or before cross_entropy
        s.boost("activation_choice", 0.85, f"the saturated layer is the model's output {ctx.output_activation}: its "
                                           "range must hold the targets, and a loss that applies it itself "
                                           "(BCEWithLogitsLoss, cross_entropy) wants raw scores")
        return
    if not f.facts.get("saturated_from_start") and BLOWN & ctx.symptoms:
        # HF BERT at LR 5e-2: the pooler's tanh saturated while the loss spiked and diverged, and
        # the saturation alone said "replace tanh with ReLU" against the others' "LR too high"
        s.boost("lr_too_high", 0.8, "units saturated while the loss/gradients blew up: large updates pushed the "
                                    "pre-activations to the flat ends")
        s.damp("activation_choice", 0.6)
        return
    peak = ctx.update_ratio_peak
    if not f.facts.get("saturated_from_start") and peak is not None and peak > RATIO_HIGH:
        # AUTOTRAINER's oscillating tanh MLP at SGD 0.5: updates of 13 % of the weights a step
        # drove the units to their flat ends; "replace tanh with ReLU" left the LR unranked
        s.boost("lr_too_high", 0.75, f"the updates reached {peak:.2g} of the weights' size in a step (update/weight "
                                     "ratio; ~1e-3 is usual): large steps pushed the pre-activations to the flat ends")
        s.damp("activation_choice", 0.8)
        return
    if f.facts.get("saturated_from_start"):
        s.boost("bad_init", 0.8, "saturated from the first record with standardised inputs: the initial weights are "
                                 "too large for sigmoid/tanh")
    else:
        s.boost("activation_choice", 0.75, "the units saturated during training with standardised inputs: sigmoid/tanh "
                                           "hidden units drift to their flat ends, ReLU-family units do not")


SPEC = SymptomSpec(
    id="saturated_activations",
    looks_at="`act_frac_saturated` of sigmoid/tanh-family modules",
    fires_when="> 50 % of outputs within 1 % of a bound, i.e. pre-activation beyond about +-5 (DeepDiagnosis)",
    detect=detect,
    priors={"bad_init": 0.4, "input_scaling": 0.3, "activation_choice": 0.3, "missing_normalization": 0.2,
            "lr_too_high": 0.1},
    word="saturation",
    adjust=adjust,
    needs=("activations",),
)
