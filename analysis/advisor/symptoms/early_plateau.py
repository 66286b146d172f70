"""``early_plateau``: progress stopped early at a level still high."""
from __future__ import annotations

from .. import loss_rules
from ..causes import lr_exploded, lr_from_update_ratio, training_stalled
from ..context import MIN_LOSS_POINTS
from ..signals import main_loss
from ..spec import SymptomSpec


def detect(sig, ctx):
    main = main_loss(sig)
    if main is None:
        return None
    name, s, v = main
    f = loss_rules.detect_early_plateau(s, v, series=name, min_points=MIN_LOSS_POINTS)
    if f is not None:
        loss_rules.add_explosion_evidence(f, name, s, v)
    return f


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True, boost_low=True)
    lr_exploded(s, f)
    if ctx.lr_drop is not None and ctx.lr_drop >= 100:
        s.boost("lr_too_low", 0.85, f"the LR schedule cut the LR {ctx.lr_drop:.0f}x (step {ctx.lr_drop_step}) "
                                    "around where the loss stopped improving")
    training_stalled(s, ctx)
    if not ({"dead_units", "saturated_activations", "vanishing_gradients"} & ctx.symptoms):
        s.why.setdefault("insufficient_capacity", "no sign of dead/saturated units or vanishing gradients: the "
                                                  "model may be too small for the task")


SPEC = SymptomSpec(
    id="early_plateau",
    looks_at="training loss",
    fires_when="after the first 30 % of the run < 10 % of the total progress, ending above 30 % of the initial level",
    detect=detect,
    priors={"insufficient_capacity": 0.35, "lr_too_low": 0.3, "activation_choice": 0.2, "bad_init": 0.15,
            "lr_too_high": 0.1},
    word="plateau",
    adjust=adjust,
    needs=("loss",),
)
