"""``overfitting``: validation loss rose well above its best while the training loss kept falling."""
from __future__ import annotations

from ...findings import Fix
from .. import loss_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if sig.val_loss is None:
        return None
    vname, vs, vv = sig.val_loss
    t = sig.train_loss
    return loss_rules.detect_overfitting(t[1] if t else None, t[2] if t else None, vs, vv,
                                         train_series=t[0] if t else "train loss", val_series=vname)


def adjust(s, f, ctx):
    if ctx.train_loss_near_zero:
        s.boost("label_noise", 0.35, "the training loss reached ~0: the model memorises its training set, noisy "
                                     "labels included")


def fixes(f, ctx):
    # same id as "stop early at the best validation step": the checkpoint says it already
    if f.first_step is None:
        return []
    return [Fix("early_stop", f"keep the checkpoint from step {f.first_step} (best validation loss)")]


SPEC = SymptomSpec(
    id="overfitting",
    looks_at="validation vs training loss",
    fires_when="val loss > best +10 % and > best + 3 robust sigmas (second differences) for the last 3 (>= 10 %) "
               "evaluations, training loss not rising",
    detect=detect,
    priors={"insufficient_regularization": 0.7, "label_noise": 0.25},
    word="overfitting",
    adjust=adjust,
    fixes=fixes,
    needs=("validation_loss",),
)
