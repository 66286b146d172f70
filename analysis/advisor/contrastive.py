"""A contrastive loss at its chance level: ln(K) for the K candidates of each row of the batch.

NT-Xent/InfoNCE (SimCLR, MoCo without a queue, CLIP) is a cross-entropy over the other samples of
the batch: an untrained encoder scores them alike and starts at ln(K), K = 2N - 1 for SimCLR's two
views of N images fed as one batch of B = 2N (K = B - 1), K = B for CLIP-style in-batch negatives,
K = 2B - 1 for two views of B fed separately. Cosine similarities lie in [-1, 1]; divided by a
temperature they bound the logits, and with them the loss: at T = 5 the floor is
ln(1 + (K - 1) e^(-2/T)) = 5.14 for K = 255, against ln 255 = 5.54 at the start (trial 14, L2:
SimCLR at T = 5 went 5.52 -> 5.41 with its weights moving 377 % of their size at a normal rate,
and read "lr too low, raise the LR 10x").
"""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_BATCH_SIZE

EXACT = 0.02    # the first loss within 2 % of ln(K): a chance level of a batch-wide softmax, not a coincidence


def candidates(batch: int) -> tuple:
    """(K, how) for the layouts of a batch-wide contrastive loss over a batch of ``batch`` inputs."""
    return ((batch - 1, f"the {batch - 1} other samples of the batch of {batch} (two views of {batch // 2} "
                        "images, SimCLR's NT-Xent)"),
            (batch, f"the {batch} samples of the batch (in-batch negatives, CLIP/InfoNCE)"),
            (2 * batch - 1, f"the {2 * batch - 1} other views of two views of {batch} samples"))


def contrastive_chance(sig, first: float) -> tuple | None:
    """(ln K, K, words) when the first training loss sits within ``EXACT`` of ln(K) for a contrastive
    loss over the recorded batch (``sys/batch_size``), else None."""
    series = sig.scalars.get(SYS_BATCH_SIZE)
    if series is None or not len(series[1]) or not math.isfinite(first):
        return None
    sizes = np.asarray(series[1], dtype=np.float64)
    sizes = sizes[np.isfinite(sizes)]
    if not sizes.size:
        return None
    batch = int(np.median(sizes))
    if batch < 8:      # a handful of candidates: ln K is any small loss's value
        return None
    for k, words in candidates(batch):
        level = math.log(k)
        if abs(first - level) <= EXACT * level:
            return level, k, words
    return None
