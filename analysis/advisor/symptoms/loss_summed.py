"""``loss_summed``: a cross-entropy summed over the batch rather than averaged, under an
optimizer whose step grows with the loss's scale.

``nn.CrossEntropyLoss(reduction="sum")`` with SGD at an LR tuned for the mean takes steps
batch-size times too large. An imagenet-style ResNet with SGD 0.1 and batches of 64 (trial 15,
F13) started at 153.6, jumped to 401, had a first validation loss of 500, and finished at
validation loss 0.83 and accuracy 0.69 (0.31 and 0.90 with the mean), with "no problems
found". The first loss tells: an untrained model with small scores (std s) costs about
ln(C) + s^2/2 per sample, and a first loss that many times the batch size is a sum over it.
Adam, RMSprop and the like divide the scale out, so it is not judged for them.
"""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_BATCH_SIZE

from ...findings import Evidence, Finding
from ..gradient_rules import scale_free
from ..series import finite_prefix, fmt
from ..spec import SymptomSpec
from .loss_at_init_high import LARGE, random_score_loss

AGREE = 0.3        # the first loss / the per-sample loss within 30 % of the batch size
MIN_BATCH = 4      # a smaller batch leaves the ratio too close to a mean's 1


def detect(sig, ctx):
    classes = ctx.n_tokens if ctx.token_model and ctx.n_tokens else ctx.n_outputs
    batch = sig.scalars.get(SYS_BATCH_SIZE)
    if sig.train_loss is None or not classes or classes < 2 or batch is None or ctx.initial_output is None:
        return None
    if not ctx.optimizer or scale_free(ctx.optimizer):
        return None
    sizes = np.asarray(batch[1], dtype=np.float64)
    sizes = sizes[np.isfinite(sizes)]
    if not sizes.size or sizes[0] < MIN_BATCH:
        return None
    size = float(sizes[0])
    name, steps, values = sig.train_loss
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    module, std = ctx.initial_output
    if not len(values) or std >= LARGE:
        return None
    first, per_sample = float(values[0]), random_score_loss(std, classes)
    times = first / per_sample
    if abs(times / size - 1) > AGREE:
        return None
    return Finding(
        symptom="loss_summed", severity="warning", first_step=int(steps[0]), last_step=int(steps[-1]),
        title=(f"{name} is summed over the batch, not averaged: the first loss {fmt(first)} is {times:.0f}x the "
               f"{fmt(per_sample)} an untrained model costs per sample, and the batch holds {size:.0f}: "
               f"{ctx.optimizer}'s steps are ~{size:.0f}x the ones its LR was tuned for"),
        evidence=[
            Evidence(series=name, steps=[int(steps[0])], values=[round(first, 5)], threshold=AGREE,
                     text=(f"the first {name} {fmt(first)} is {times:.1f}x {fmt(per_sample)}, the cross-entropy of "
                           f"{classes} scores of std {std:.2g} (the output layer's at the first record; ln({classes}) = "
                           f"{math.log(classes):.3g}) for one sample")),
            Evidence(series=SYS_BATCH_SIZE, values=[size], threshold=AGREE,
                     text=(f"the first batch held {size:.0f} samples (sys/batch_size): the ratio is the batch size "
                           f"within {AGREE:.0%}, the signature of reduction='sum'"))],
        facts={"first_loss": round(first, 5), "per_sample": round(per_sample, 5), "batch_size": size,
               "times": round(times, 3)})


def adjust(s, f, ctx):
    s.boost("loss_summed", 0.9, f"the first loss is {f.facts['times']:.0f}x one sample's, the batch size "
                                f"({f.facts['batch_size']:.0f}): {ctx.optimizer}'s step scales with the sum")


SPEC = SymptomSpec(
    id="loss_summed",
    looks_at="the first training loss, `sys/batch_size`, the output size C, the output layer's first activation std, "
             "the optimizer type",
    fires_when=f"under an optimizer whose step grows with the loss's scale (SGD; not Adam, RMSprop, Adagrad, ...), the "
               f"first loss divided by the cross-entropy of C random scores of the output's first std (< {LARGE:g}) is "
               f"the batch size within {AGREE:.0%} (batches of >= {MIN_BATCH}) (warning)",
    detect=detect,
    priors={"loss_summed": 0.8, "lr_too_high": 0.3},
    word="step size",
    adjust=adjust,
    needs=("loss", "activations"),
)
