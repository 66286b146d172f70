"""``loss_unbounded``: the training loss fell without bound, to orders of magnitude below zero.

A loss that should stay near or above zero (cross-entropy, BCE + KL, MSE) running to -1e21 is an
objective with no minimum: a term with the wrong sign (pytorch/examples' VAE with ``KLD = -KLD``
went +40 -> -2.3e21 in 300 steps), a log-likelihood maximised where it should be minimised, or a
learned variance whose -log(sigma) has nothing to hold it. Its growing gradients were read as
"bad init 80%" and its wobbles as "label noise" (trial 15, F1). A Gaussian NLL that settles at -2.5
is a loss that may be negative: it is judged by how far below its first level it runs, not by
its sign.
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from ..series import finite_prefix, fmt, head_level
from ..spec import SymptomSpec

RUNAWAY = 1000.0      # the loss went below -RUNAWAY x the size of its first level
MIN_POINTS = 5


def detect(sig, ctx):
    if sig.train_loss is None:
        return None
    name, steps, values = sig.train_loss
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if len(values) < MIN_POINTS:
        return None
    first = head_level(values)
    low = int(np.argmin(values))
    scale = max(abs(first), 1e-3)
    if values[low] >= -RUNAWAY * scale:
        return None
    below = np.flatnonzero(values < 0)
    return Finding(
        symptom="loss_unbounded", severity="error", first_step=int(steps[below[0]]), last_step=int(steps[-1]),
        title=f"{name} fell without bound: from {fmt(first)} to {fmt(float(values[low]))} at step {int(steps[low])}",
        evidence=[Evidence(
            series=name, steps=[int(steps[0]), int(steps[below[0]]), int(steps[low])], threshold=-RUNAWAY,
            values=[float(first), float(values[below[0]]), float(values[low])],
            text=(f"{name} started at {fmt(first)}, went below 0 at step {int(steps[below[0]])} and reached "
                  f"{fmt(float(values[low]))}, {abs(values[low]) / scale:.2g}x its first level below zero (threshold "
                  f"{RUNAWAY:g}x): the objective has no minimum, so every step can lower it further"))],
        facts={"lowest": float(values[low]), "first": float(first)})


SPEC = SymptomSpec(
    id="loss_unbounded",
    looks_at="training loss",
    fires_when=f"the training loss reached below -{RUNAWAY:g}x the size of its first level (error)",
    detect=detect,
    priors={"loss_sign": 0.9},
    word="runaway loss",
    needs=("loss",),
)
