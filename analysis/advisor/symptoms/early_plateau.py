"""``early_plateau``: progress stopped early at a level still high."""
from __future__ import annotations

from .. import loss_rules
from ..causes import (MOSTLY_FROZEN, lr_exploded, lr_from_update_ratio, lr_scale_phrase, mostly_frozen,
                      training_stalled, unfreeze_fix)
from ..dropout import strong_dropouts
from ..spec import SymptomSpec
from ..val_witness import mixed_batches, settle_on_validation


def detect(sig, ctx):
    f = ctx.on_loss_curve(loss_rules.detect_early_plateau)
    if f is not None:
        loss_rules.add_explosion_evidence(f, *ctx.loss_curve())
    return f


THROWN_AROUND = {"loss_spikes": "spikes", "loss_oscillation": "oscillates"}


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True, boost_low=True)
    lr_exploded(s, f)
    if ctx.lr_drop is not None and ctx.lr_drop >= 100:
        s.boost("lr_too_low", 0.85, f"the LR schedule cut the LR from {ctx.lr_values[0]:.3g} to "
                                    f"{ctx.lr_values[-1]:.3g} (below a tenth of its start from step "
                                    f"{ctx.lr_drop_step}) around where the loss stopped improving")
    training_stalled(s, ctx)
    if mostly_frozen(s, ctx):
        s.damp("insufficient_capacity", 0.5)
    if ctx.found.get("weight_growth") is not None and ctx.found["weight_growth"].severity != "info":
        s.boost("lr_too_high", 0.85, f"the weights grew early ({lr_scale_phrase(ctx)}): the loss stalls at the level "
                                     "steps that large allow")
        s.damp("insufficient_capacity", 0.4)
        s.damp("lr_too_low", 0.3)
    thrown = set(THROWN_AROUND) & ctx.symptoms
    if thrown:
        # pytorch/examples' regression at 10x its LR: the level the loss "stalled" at was the mean
        # of a loss bouncing 2.7..70, and the plateau said "model too small, raise the LR 10x"
        # above the spikes' "reduce the LR 10x"
        s.boost("lr_too_high", 0.8, f"the loss {' and '.join(sorted(THROWN_AROUND[t] for t in thrown))} over the "
                                    "plateau: the level it stalls at is that of a loss thrown around by large updates")
        s.damp("insufficient_capacity", 0.4)
        s.damp("lr_too_low", 0.3)
        return
    if not ({"dead_units", "saturated_activations", "vanishing_gradients"} & ctx.symptoms):
        s.why.setdefault("insufficient_capacity", "no sign of dead/saturated units or vanishing gradients: the "
                                                  "model may be too small for the task")
    mixed_batches(s, f, ctx)


# Findings that show a training problem behind a plateau; without one (and without an LR cut or an
# update/weight ratio far from ~1e-3) a plateau is most often the floor the data allow (a noisy
# regression target, ambiguous labels): a note, not a warning.
CORROBORATING = {"dead_units", "saturated_activations", "vanishing_gradients", "exploding_gradients", "frozen_layers",
                 "symmetric_weights", "unnormalized_inputs", "loss_oscillation", "divergence", "nan_inf", "weight_growth"}


def settle(f, ctx):
    """A plateau nothing explains, or one over which the validation loss kept falling, is a note (info)."""
    if settle_on_validation(f, ctx):
        return True
    loud = {s for s, g in ctx.found.items() if g.severity != "info"} & CORROBORATING
    # an LR cut explains a plateau only if it came before the loss stopped improving (with a little slack)
    cut = ctx.lr_drop is not None and ctx.lr_drop >= 10 and ctx.lr_drop_step is not None \
        and f.first_step is not None and ctx.lr_drop_step <= f.first_step + max(10, 0.1 * f.first_step)
    if loud or cut or ctx.ratio_low or ctx.ratio_high or f.facts.get("exploded_then_settled") \
            or ctx.accumulating or ctx.output_activation or ctx.eps_too_large \
            or strong_dropouts(ctx.dropout_rates):
        return True
    f.severity = "info"
    f.facts["uncorroborated"] = True
    frozen = ctx.frozen_share
    f.title += (f" ({frozen:.0%} of the parameters frozen: intended?)" if frozen >= MOSTLY_FROZEN else
                " (no sign of a training problem: the floor the data allow, or a model too small?)")
    return True


def fixes(f, ctx):
    return unfreeze_fix(ctx)


SPEC = SymptomSpec(
    id="early_plateau",
    looks_at="training loss",
    fires_when="after the first 30 % of the run < 10 % of the total progress, ending above 30 % of the initial level; "
               "info only, unless an LR cut (>= 10x), an update/weight ratio far from 1e-3, an Adam eps >= 10x the "
               "gradients' RMS, a Dropout at p >= 0.8 or another finding shows a training problem (a high "
               "irreducible floor is not one), and info whenever the validation loss fell >= 30 % over the plateau's steps",
    detect=detect,
    priors={"insufficient_capacity": 0.35, "lr_too_low": 0.3, "activation_choice": 0.2, "bad_init": 0.15,
            "lr_too_high": 0.1},
    word="plateau",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss",),
)
