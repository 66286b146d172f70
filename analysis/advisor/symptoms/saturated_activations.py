"""``saturated_activations``: sigmoid/tanh-family outputs sitting at their bounds."""
from __future__ import annotations

from ...findings import Evidence
from ...vocab import Severity
from .. import activation_rules
from ..causes import output_only, inputs_unscaled, lr_from_update_ratio
from ..update_scale import peak_normal_level, usual_ratio
from ..series import fmt
from ..spec import SymptomSpec
from ._cut import types_of
from .dead_units import trained_well
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
    if not f.facts.get("saturated_from_start") and peak is not None and peak > peak_normal_level(ctx.optimizer):
        # AUTOTRAINER's oscillating tanh MLP at SGD 0.5: updates of 13 % of the weights a step
        # drove the units to their flat ends; "replace tanh with ReLU" left the LR unranked
        s.boost("lr_too_high", 0.75, f"the updates reached {peak:.2g} of the weights' size in a step (update/weight "
                                     f"ratio; {usual_ratio(ctx.optimizer)}): large steps pushed the pre-activations to the flat ends")
        s.damp("activation_choice", 0.8)
        return
    if f.facts.get("saturated_from_start"):
        s.boost("bad_init", 0.8, "saturated from the first record with standardised inputs: the initial weights are "
                                 "too large for sigmoid/tanh")
    else:
        s.boost("activation_choice", 0.75, "the units saturated during training with standardised inputs: sigmoid/tanh "
                                           "hidden units drift to their flat ends, ReLU-family units do not")


CONFIDENT = 0.2    # an output Sigmoid at its bounds in a model whose final loss is <= this share of its first


def settle(f, ctx):
    """The output Sigmoid alone at its bounds, in a model that trained well and with nothing else
    wrong, is a confident classifier: its predictions are near 0 and 1, a note. A binary MLP with
    Sigmoid + BCELoss at validation loss 0.074 (0.69 untrained) read "activation choice" (user
    trial); a Sigmoid before a loss that applies its own, or over regression targets, does not
    train that well."""
    if f.severity != Severity.WARNING or not output_only(f, ctx) or ctx.another_warns(f):
        return True
    well = trained_well(ctx.sig, ctx, CONFIDENT)
    if well is not None:
        f.severity = Severity.INFO
        f.title += " (the model trained well: confident predictions near 0 and 1; a note)"
        f.evidence.append(Evidence(
            series=well["series"], values=[round(well["first"], 6), round(well["end"], 6)], threshold=CONFIDENT,
            text=(f"{well['series']} ended at {fmt(well['end'])}, {well['end'] / well['first']:.1%} of the untrained "
                  f"loss ({fmt(well['first'])}; a note below {CONFIDENT:.0%}): an output at its bounds is a confident "
                  "prediction there")))
    return True


SPEC = SymptomSpec(
    id="saturated_activations",
    looks_at="`act_frac_saturated` of sigmoid/tanh-family modules",
    fires_when="> 50 % of outputs within 1 % of a bound, i.e. pre-activation beyond about +-5 (DeepDiagnosis); a note "
               f"when it is the output activation alone, nothing else warns and the final loss (validation's if logged) "
               f"is <= {CONFIDENT:.0%} of the untrained one",
    detect=detect,
    priors={"bad_init": 0.4, "input_scaling": 0.3, "activation_choice": 0.3, "missing_normalization": 0.2,
            "lr_too_high": 0.1},
    word="saturation",
    adjust=adjust,
    settle=settle,
    needs=("activations",),
)
