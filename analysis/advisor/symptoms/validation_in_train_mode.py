"""``validation_in_train_mode``: the validation loss computed with Dropout or BatchNorm still training.

The recorder marks the steps at which the watched model ran a forward without grad
(torch.no_grad / inference_mode) while in train mode with a Dropout (flag 1) or a running-statistics
BatchNorm (flag 2) training (``sys/nograd_train_mode``, FORMAT.md; a 0 at a step where a no-grad
forward ran in eval mode too, before or after the mark: the step's validation ran in eval mode). Around a validation that is
``model.eval()`` forgotten: the validation loss carries the dropout's noise, and a BatchNorm folds
the validation batches into its running statistics. The reverse of ``eval_mode_training``.

A no-grad forward in train mode that is not a validation (sampling a GAN's images, a training
accuracy after the step, pseudo-labels at every step) is left alone: a validation point is read at
its own steps (``OWN``) when they have a value (a 0 there: the validation ran in eval mode), else
at the steps within ``NEAR``; most of the points must have a mark.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_NOGRAD_TRAIN_MODE

from ...findings import Evidence, Finding
from ..spec import SymptomSpec

NEAR = 1          # a validation logged with step=None after the epoch's last step carries that step; the mark, the next
OWN = (0, 1)      # the validation's own recorder steps: logged with the completed step (its forward at the next step's
#                   count) or with the count of steps done (the same step)
MOST = 0.5        # share of the validation points that must have a mark beside them
MIN_VAL_POINTS = 2
EPOCH_AXIS_RATIO = 2   # val steps 0..n-1 (or 1..n) with marks past this many times n: logged with step=epoch
EVEN = 1.5        # a mark an epoch: the largest gap between marks at most this times the smallest


def _per_step(marks):
    """(steps, flags), one value a step: 0 where a no-grad forward of that step ran in eval mode
    (the recorder's 0, before or after a mark of the step), else the flags OR-ed."""
    steps, values = np.asarray(marks[0]), np.asarray(marks[1], dtype=np.float64)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok].astype(np.int64)
    usteps, inverse = np.unique(steps, return_inverse=True)
    flags = np.zeros(len(usteps), dtype=np.int64)
    np.bitwise_or.at(flags, inverse, values)
    zeroed = np.zeros(len(usteps), dtype=bool)
    zeroed[inverse[values == 0]] = True
    flags[zeroed] = 0
    return usteps, flags


def _flags_at(msteps, flags, vsteps, offsets):
    """For each validation point: the flags at its steps + offsets (OR), and whether any of those
    steps has a value, and whether one reads 0."""
    out = np.zeros(len(vsteps), dtype=np.int64)
    has = np.zeros(len(vsteps), dtype=bool)
    zero = np.zeros(len(vsteps), dtype=bool)
    for d in offsets:
        at = vsteps + d
        i = np.clip(np.searchsorted(msteps, at), 0, len(msteps) - 1)
        hit = msteps[i] == at
        has |= hit
        zero |= hit & (flags[i] == 0)
        out |= np.where(hit, flags[i], 0)
    return out, has, zero


def detect(sig, ctx):
    marks = sig.scalars.get(SYS_NOGRAD_TRAIN_MODE)
    if marks is None or sig.val_loss is None or not len(marks[0]):
        return None
    name, vsteps, _ = sig.val_loss
    vsteps = np.unique(np.asarray(vsteps)).astype(np.int64)
    if len(vsteps) < MIN_VAL_POINTS:
        return None
    msteps, flags = _per_step(marks)
    if not flags.any():
        return None
    if _on_epoch_axis(vsteps, msteps):
        point_flags = _by_order(vsteps, msteps, flags)
        if point_flags is None:
            return None
        return _finding(name, vsteps, point_flags, " (logged per epoch: its k-th point read against the k-th mark)")
    # A validation's own steps decide when they have a value: a 0 there is an eval-mode no-grad
    # forward (the validation done right; a sample or pseudo-labels in train mode beside it are
    # not it). Only without one are the neighbouring steps' marks read.
    own, has_own, zero_own = _flags_at(msteps, flags, vsteps, OWN)
    near_offsets = [d for d in range(-NEAR, NEAR + 1) if d not in OWN]
    nb, _, zero_nb = _flags_at(msteps, flags, vsteps, near_offsets)
    point_flags = np.where(has_own, np.where(zero_own, 0, own), np.where(zero_nb, 0, nb))
    return _finding(name, vsteps, point_flags, "")


def _on_epoch_axis(vsteps, msteps):
    """The validation is logged with step=epoch (the TensorBoard habit): its points 0..n-1 (or 1..n)
    are not optimizer steps, which the marks carry, far past n; their steps do not line up."""
    n = len(vsteps)
    consecutive = vsteps[0] in (0, 1) and vsteps[-1] - vsteps[0] == n - 1
    return consecutive and msteps[-1] + 1 >= EPOCH_AXIS_RATIO * (vsteps[-1] + 1)


def _by_order(vsteps, msteps, flags):
    """Each validation point's flags when there is one mark an epoch, as many as the points, an
    epoch apart, at steps with no eval-mode no-grad forward: the k-th mark is the k-th validation.
    Anything else (marks at every step: pseudo-labels; a 0 beside them: a sample after an eval-mode
    validation) is not read; None."""
    marked = flags > 0
    if (~marked).any() or len(msteps) != len(vsteps) or len(msteps) < 3:
        return None
    gaps = np.diff(msteps)
    if gaps.min() < 2 or gaps.max() > EVEN * gaps.min():
        return None
    return flags


def _finding(name, vsteps, point_flags, how):
    marked = point_flags > 0
    if marked.mean() < MOST:
        return None
    bits = int(np.bitwise_or.reduce(point_flags[marked]))
    parts = [w for b, w in ((1, "Dropout"), (2, "BatchNorm")) if bits & b]
    if not parts:
        return None
    what = " and ".join(parts)
    n, total = int(marked.sum()), len(vsteps)
    first, last = int(vsteps[marked][0]), int(vsteps[marked][-1])
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
                                f"train mode with {what} training{how}: " + "; ".join(effect))],
        facts={"validations": n, "dropout": bool(bits & 1), "batchnorm": bool(bits & 2)})


SPEC = SymptomSpec(
    id="validation_in_train_mode",
    looks_at="`sys/nograd_train_mode` (the recorder marks steps with a forward without grad while the model is in "
             "train mode with a Dropout or BatchNorm training), the validation loss's steps",
    fires_when=f"such a mark at >= {MOST:.0%} of the validation loss's points (at least {MIN_VAL_POINTS}): at the "
               f"point's own steps (its step and the next), or within {NEAR} step where those have no value; a 0 "
               "there (a no-grad forward in eval mode at that step) is a validation done right (warning); marks away "
               "from the validation (sampling, a training accuracy, pseudo-labels) are not read; a validation logged "
               "with step=epoch (points 0..n-1, marks far past) is read by order: one mark an epoch, as many as its "
               "points, evenly spaced",
    detect=detect,
    priors={"train_mode_at_validation": 0.95},
    word="validation in train mode",
)
