"""``overfitting``: validation loss rose well above its best while the training loss kept falling."""
from __future__ import annotations

from ...findings import Fix
from .. import loss_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if sig.val_loss is None or sig.rewards:
        return None
    vname, vs, vv = sig.val_loss
    t = sig.train_loss
    names = {"train_series": t[0] if t else "train loss", "val_series": vname}
    # never generalised first: the more specific reading of a validation loss that also rose
    return (loss_rules.detect_no_generalisation(t[1] if t else None, t[2] if t else None, vs, vv, **names)
            or loss_rules.detect_overfitting(t[1] if t else None, t[2] if t else None, vs, vv, **names))


def adjust(s, f, ctx):
    if f.facts.get("never_generalised"):
        s.boost("label_noise", 0.85, "the validation loss never left the untrained level while the training loss "
                                     "fell: labels that do not go with their inputs, or validation data unlike "
                                     "the training data")
        s.damp("insufficient_regularization", 0.3)
    elif ctx.train_loss_near_zero:
        s.boost("label_noise", 0.35, "the training loss reached ~0: the model memorises its training set, noisy "
                                     "labels included")


def fixes(f, ctx):
    if f.facts.get("never_generalised"):
        return [Fix("check_pairing", "check that each input still goes with its label (shuffled or indexed "
                                     "apart?) and that the validation set is built like the training set")]
    # same id as "stop early at the best validation step": the checkpoint says it already
    step = f.facts.get("best_step", f.first_step)
    if step is None:
        return []
    return [Fix("early_stop", f"keep the checkpoint from step {step} (lowest validation loss logged)")]


SPEC = SymptomSpec(
    id="overfitting",
    looks_at="validation vs training loss",
    fires_when="val loss > best +10 % and > best + 3 robust sigmas (second differences) for the last 3 (>= 10 %) "
               "evaluations, training loss not rising; or val loss never below 95 % of the untrained training "
               "loss and ending above its first value while the training loss fell >= 5 %",
    detect=detect,
    priors={"insufficient_regularization": 0.7, "label_noise": 0.25},
    word="overfitting",
    adjust=adjust,
    fixes=fixes,
    needs=("validation_loss",),
)
