"""The validation loss as a witness for the training loss's shape.

A training loss measured on mixed or heavily augmented batches (mixup, CutMix, RandAugment)
moves with each batch's mixing weight, not with what the model learns: it can sit flat or
swing for the whole run while the validation loss, measured on clean data, falls steadily.
The loss-shape rules (a plateau, an oscillation) judge the training curve alone; when the
validation loss kept falling over the very steps they judged, the model was learning there,
and the finding is a note about the curve rather than a convergence problem.
"""
from __future__ import annotations

import numpy as np

from ..findings import Evidence
from ..vocab import Severity
from .series import as_series, finite_prefix, fmt

MIN_FALL = 0.3        # the validation loss ended >= 30 % below its level where the training curve stopped
MIN_POINTS = 4        # validation points inside the judged stretch
KEPT = 0.75           # ... and kept >= 75 % of its best fall there (not a val loss that dipped and came back)


def kept_falling(sig, since_step: int | None) -> dict | None:
    """How the validation loss moved from ``since_step`` to the end, when it fell by >= MIN_FALL
    there and kept most of that fall to the end; None otherwise (no validation loss, too few points, a
    signed loss whose relative fall means nothing, or a validation loss that did not fall)."""
    if sig.val_loss is None or since_step is None:
        return None
    name, steps, values = sig.val_loss
    steps, values = finite_prefix(*as_series(steps, values))
    after = np.flatnonzero(steps >= since_step)
    if len(after) < MIN_POINTS or np.any(values < 0):
        return None
    # the level where the training curve stopped: the last point at or before it and the next two
    first = max(int(after[0]) - 1, 0)
    start = float(np.median(values[first:first + 3]))
    end = float(np.median(values[-3:]))
    best = float(np.min(values[after]))
    if start <= 0 or end > (1 - MIN_FALL) * start or start - end < KEPT * (start - best):
        return None
    return {"series": name, "from": start, "to": end, "from_step": int(steps[first]), "to_step": int(steps[-1]),
            "points": [float(values[first]), float(values[-1])],     # on the curve, for the plots' markers
            "text": f"{name} kept falling meanwhile, from {fmt(values[first])} at step {int(steps[first])} to "
                    f"{fmt(values[-1])} at step {int(steps[-1])} (levels, medians of 3 evaluations: {fmt(start)} -> "
                    f"{fmt(end)})"}


def settle_on_validation(f, ctx) -> bool:
    """Make ``f`` (a judgement of the training curve's shape from ``f.first_step``) a note when the
    validation loss kept falling over the same steps; True when it did."""
    fell = kept_falling(ctx.sig, f.first_step)
    if fell is None:
        return False
    f.severity = Severity.INFO
    f.facts["val_kept_falling"] = {k: v for k, v in fell.items() if k != "text"}
    f.evidence.append(Evidence(series=fell["series"], text=fell["text"], steps=[fell["from_step"], fell["to_step"]],
                               values=fell["points"]))
    a, b = fell["points"]
    f.title += (f" (but {fell['series']} kept falling, {fmt(a)} -> {fmt(b)}: a training loss "
                f"on mixed or augmented batches moves like this; judge progress on {fell['series']})")
    return True


def mixed_batches(s, f, ctx) -> None:
    """Cause adjuster: the validation loss kept falling where the training loss was judged, so the
    training loss measures the batches' mixing, not the model; the other causes are far less likely."""
    fell = f.facts.get("val_kept_falling")
    if not fell:
        return
    for cause in list(s.score):
        s.damp(cause, 0.3)
    a, b = fell["points"]
    s.boost("mixed_batch_loss", 0.8, f"{fell['series']} fell from {fmt(a)} at step {fell['from_step']} to {fmt(b)} at "
                                     f"step {fell['to_step']}: the model kept learning there")
