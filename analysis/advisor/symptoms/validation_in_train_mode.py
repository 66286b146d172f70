"""``validation_in_train_mode``: the validation loss computed with Dropout or BatchNorm still training.

The recorder marks the steps at which the watched model ran a forward without grad
(torch.no_grad / inference_mode) while in train mode with a Dropout (flag 1) or a running-statistics
BatchNorm (flag 2) training (``sys/nograd_train_mode``, FORMAT.md; a 0 after a mark at the same step:
the step's later no-grad forwards ran in eval mode). Around a validation that is
``model.eval()`` forgotten: the validation loss carries the dropout's noise, and a BatchNorm folds
the validation batches into its running statistics. The reverse of ``eval_mode_training``.

A no-grad forward in train mode that is not a validation (sampling a GAN's images, a training
accuracy after the step) is left alone: only marks within ``NEAR`` steps of the validation
loss's points count, and most of those points must have one.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_NOGRAD_TRAIN_MODE

from ...findings import Evidence, Finding
from ..spec import SymptomSpec

NEAR = 1          # a validation logged with step=None after the epoch's last step carries that step; the mark, the next
MOST = 0.5        # share of the validation points that must have a mark beside them
MIN_VAL_POINTS = 2


def _last_per_step(marks):
    """(steps, flags) with each step's last value, steps with flags 0 left out: a 0 after a mark
    says a no-grad forward in eval mode followed it at that step (the validation, after a training
    accuracy taken in train mode)."""
    steps, values = np.asarray(marks[0]), np.asarray(marks[1], dtype=np.float64)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok].astype(np.int64)
    rev_steps, first_of_rev = np.unique(steps[::-1], return_index=True)   # sorted steps, their last row
    flags = values[::-1][first_of_rev]
    keep = flags > 0
    return rev_steps[keep], flags[keep]


def detect(sig, ctx):
    marks = sig.scalars.get(SYS_NOGRAD_TRAIN_MODE)
    if marks is None or sig.val_loss is None or not len(marks[0]):
        return None
    name, vsteps, _ = sig.val_loss
    vsteps = np.unique(np.asarray(vsteps))
    if len(vsteps) < MIN_VAL_POINTS:
        return None
    msteps, flags = _last_per_step(marks)
    if not len(msteps):
        return None
    # the closest mark to each validation point
    idx = np.clip(np.searchsorted(msteps, vsteps), 1, len(msteps)) - 1
    nxt = np.clip(idx + 1, 0, len(msteps) - 1)
    gap = np.minimum(np.abs(msteps[idx] - vsteps), np.abs(msteps[nxt] - vsteps))
    near = gap <= NEAR
    if near.mean() < MOST:
        return None
    used = np.isin(msteps, np.concatenate([vsteps + d for d in range(-NEAR, NEAR + 1)]))
    bits = int(np.bitwise_or.reduce(flags[used])) if used.any() else 0
    parts = [w for b, w in ((1, "Dropout"), (2, "BatchNorm")) if bits & b]
    if not parts:
        return None
    what = " and ".join(parts)
    n, total = int(near.sum()), len(vsteps)
    first, last = int(vsteps[near][0]), int(vsteps[near][-1])
    effect = []
    if bits & 1:
        effect.append("the dropout drops units in the validation forward, so the validation loss is noisier and "
                      "higher than the model's")
    if bits & 2:
        effect.append("batch norm normalises with each validation batch's own statistics and folds them into its "
                      "running statistics (validation data leaks into the model)")
    return Finding(
        symptom="validation_in_train_mode", severity="warning",
        title=f"{name} was computed with the model in train mode ({what} active) at {n} of {total} validations",
        first_step=first, last_step=last,
        evidence=[Evidence(series=SYS_NOGRAD_TRAIN_MODE, steps=[first, last], values=[float(n), float(total)],
                           text=f"at {n} of {total} points of {name} the watched model ran forwards without grad in "
                                f"train mode with {what} training: " + "; ".join(effect))],
        facts={"validations": n, "dropout": bool(bits & 1), "batchnorm": bool(bits & 2)})


SPEC = SymptomSpec(
    id="validation_in_train_mode",
    looks_at="`sys/nograd_train_mode` (the recorder marks steps with a forward without grad while the model is in "
             "train mode with a Dropout or BatchNorm training), the validation loss's steps",
    fires_when=f"such a mark within {NEAR} step of >= {MOST:.0%} of the validation loss's points (at least "
               f"{MIN_VAL_POINTS}) (warning); marks away from the validation (sampling, a training accuracy) are not read",
    detect=detect,
    priors={"train_mode_at_validation": 0.95},
    word="validation in train mode",
)
