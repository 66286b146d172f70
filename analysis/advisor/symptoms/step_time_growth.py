"""``step_time_growth``: each step takes longer than the one before, steadily, over the run.

Backward through every earlier iteration: a recurrent model's hidden state carried into the next
batch without ``.detach()`` (with ``retain_graph=True``, the usual answer to "backward through the
graph a second time"), or a running total that adds the loss tensor with its graph. pytorch/examples'
word_language_model so changed took 0.09 s a step at first and 0.6 s after 45 steps, and its flat
loss read "lr too low, raise the learning rate 10x" (trial 18 U7).
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_INPUT_NUMEL, SYS_STEP_TIME

from ...findings import Evidence, Finding
from ..series import fmt
from ..spec import SymptomSpec

MIN_POINTS = 10       # step times
GREW = 3.0            # the last fifth's median over the first fifth's
MIN_ADDED = 0.01      # seconds a step the last fifth takes beyond the first (timer noise of tiny loops)
STEADY = 0.5          # rank correlation of the step time with the step (a shared, busy host scatters it)
MIDDLE = (0.2, 0.8)   # the middle fifth's median lies this far between the first's and the last's: a ramp,
#                       not a jump (another job starting on the host slows every step from then on)
INPUT_GREW = 1.5      # the recorded input grew this much too: longer batches by design (a curriculum)


def _rank_correlation(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    d = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / d) if d > 0 else 0.0


def _fifths(s, v):
    k = max(3, len(v) // 5)
    return float(np.median(v[:k])), float(np.median(v[-k:])), k


def detect(sig, ctx):
    found = sig.scalars.get(SYS_STEP_TIME)
    if found is None:
        return None
    s, v = np.asarray(found[0], np.int64), np.asarray(found[1], np.float64)
    ok = np.isfinite(v) & (v > 0)
    s, v = s[ok], v[ok]
    if len(v) < MIN_POINTS:
        return None
    early, late, k = _fifths(s, v)
    if not (early > 0 and late >= GREW * early and late - early >= MIN_ADDED):
        return None
    rho = _rank_correlation(s, v)
    if rho < STEADY:
        return None
    mid = len(v) // 2
    middle = float(np.median(v[max(0, mid - k // 2): mid + (k + 1) // 2]))
    if not MIDDLE[0] <= (middle - early) / (late - early) <= MIDDLE[1]:
        return None
    numel = sig.scalars.get(SYS_INPUT_NUMEL)
    if numel is not None and len(numel[1]) >= 6:
        n = np.asarray(numel[1], np.float64)
        n = n[np.isfinite(n) & (n > 0)]
        if len(n) >= 6:
            a, b, _ = _fifths(None, n)
            if b >= INPUT_GREW * a:
                return None     # the batches themselves grew (a curriculum of longer sequences)
    return Finding(
        symptom="step_time_growth", severity="warning",
        title=f"each step takes longer than the last: {fmt(early)} s -> {fmt(late)} s a step over {int(s[-1] - s[0])} steps",
        first_step=int(s[0]), last_step=int(s[-1]),
        evidence=[Evidence(series=SYS_STEP_TIME, steps=[int(s[0]), int(s[-1])], values=[early, late], threshold=GREW,
                           text=(f"the step time grew from {fmt(early)} s (median of the first {k} steps) to {fmt(late)} s "
                                 f"(median of the last {k}), {late / early:.1f}x, with the step (rank "
                                 f"correlation {rho:.2f}; threshold {GREW:g}x and {STEADY:g}) while the inputs kept "
                                 "their size: each backward runs through more of the earlier iterations' graph"))],
        facts={"early": round(early, 6), "late": round(late, 6), "rho": round(rho, 3)})


SPEC = SymptomSpec(
    id="step_time_growth",
    looks_at="`sys/step_time` (with or without a watched optimizer; in older files of a hand-written update, the "
             "training loss's log times), `sys/input_numel`",
    fires_when=f"the median step time of the last fifth of >= {MIN_POINTS} steps is >= {GREW:g}x that of the first "
               f"fifth and >= {MIN_ADDED * 1000:g} ms above it, growing with the step (rank correlation >= "
               f"{STEADY:g}) as a ramp, not a jump (the middle fifth's median {MIDDLE[0]:g}-{MIDDLE[1]:g} of the way "
               f"between), while the recorded input's size grew < {INPUT_GREW:g}x (warning)",
    detect=detect,
    priors={"graph_retained": 0.8},
    word="step time growth",
)
