"""``loss_oscillation``: after real progress the loss level keeps sitting well above its best."""
from __future__ import annotations

from .. import loss_rules
from ..causes import inputs_unscaled, lr_from_update_ratio
from ..spec import SymptomSpec
from ..val_witness import mixed_batches, settle_on_validation


def detect(sig, ctx):
    return ctx.on_loss_curve(loss_rules.detect_oscillation)


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    inputs_unscaled(s, ctx, 0.75)
    if ctx.has_norm_layers:
        s.damp("missing_normalization", 0.3)
    mixed_batches(s, f, ctx)


def settle(f, ctx):
    """An oscillating training loss over steps where the validation loss kept falling is a note."""
    settle_on_validation(f, ctx)
    return True


SPEC = SymptomSpec(
    id="loss_oscillation",
    looks_at="training loss, smoothed",
    fires_when="after >= 20 % progress, at least half the points sit above the best-so-far by > 35 % of that best "
               "(`swing`) and > 1.5 % of the initial level (`min_height`), coming back down >= 2 times; info only "
               "when the validation loss fell >= 30 % over those steps and ended near its best (mixup, CutMix)",
    detect=detect,
    priors={"lr_too_high": 0.6, "input_scaling": 0.2, "missing_normalization": 0.2, "label_noise": 0.1},
    word="oscillation",
    adjust=adjust,
    settle=settle,
    needs=("loss",),
)
