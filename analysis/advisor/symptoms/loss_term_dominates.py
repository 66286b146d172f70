"""``loss_term_dominates``: one term of a summed training loss outweighs another by orders of
magnitude, and the small one never moved while the total fell.

A multi-task model (a classification head with cross-entropy plus a regression head whose target,
an age of 30 +- 8 years, was never standardised) started at a total of 904 = 902 (MSE) + 1.6 (CE).
The total fell 99.7 % and the advisor said "the model trained well"; the classification loss went
1.63 -> 1.46 and validation accuracy ended at 39 % against 88 % with the target standardised (trial
14, M1). The terms are the training metrics with "loss" in their name logged beside the training
loss; they are read as its terms only when a non-negative weighting of them reproduces it within
3 % at nearly every step (``loss = ce + 0.5 * mse`` included).
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from ..series import finite_prefix, fmt, head_level, tail_level
from ..spec import SymptomSpec

MIN_POINTS = 20       # steps where the total and every term were logged
FIT = 0.03            # the weighted terms reproduce the total within 3 % ...
FIT_SHARE = 0.9       # ... at this share of the steps
OUTWEIGHS = 50.0      # the largest weighted term at the start is this many times the smallest
STUCK = 0.5           # the small term fell less than half of its first level (healthy: 75-95 %)
ROSE = 1.1            # ... nor rose above this many times it (a regulariser that grows as it should)
TOTAL_FELL = 0.5      # while the total fell at least this share


def _terms_of(main, terms):
    """(steps, total, {name: weighted term}) at the steps every series has, when the terms sum to
    the total with non-negative weights; else None."""
    name, steps, values = main
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    common = steps
    for s, _ in terms.values():
        common = np.intersect1d(common, np.asarray(s))
    if len(common) < MIN_POINTS:
        return None
    total = values[np.searchsorted(steps, common)]
    cols = {n: np.asarray(v, dtype=np.float64)[np.searchsorted(np.asarray(s), common)] for n, (s, v) in terms.items()}
    a = np.column_stack(list(cols.values()))
    ok = np.isfinite(a).all(axis=1) & np.isfinite(total) & (total > 0)
    if ok.sum() < MIN_POINTS:
        return None
    weights, *_ = np.linalg.lstsq(a[ok], total[ok], rcond=None)
    if np.any(weights < -1e-6):
        return None
    fitted = a[ok] @ weights
    if np.mean(np.abs(fitted - total[ok]) <= FIT * total[ok]) < FIT_SHARE:
        return None
    weighted = {n: w * cols[n][ok] for n, w in zip(cols, weights) if w > 1e-9}
    return common[ok], total[ok], weighted


def detect(sig, ctx):
    if sig.train_loss is None or len(sig.loss_terms) < 2 or sig.live:
        return None
    found = _terms_of(sig.train_loss, sig.loss_terms)
    if found is None or len(found[2]) < 2:
        return None
    steps, total, weighted = found
    start = {n: head_level(v) for n, v in weighted.items()}
    big, small = max(start, key=start.get), min(start, key=start.get)
    if start[small] <= 0 or start[big] < OUTWEIGHS * start[small]:
        return None
    t0, t1 = head_level(total), tail_level(total)
    s0, s1 = head_level(weighted[small]), tail_level(weighted[small])
    raw = sig.loss_terms[small][1]
    raw = raw[np.isfinite(raw)]
    r0, r1 = head_level(raw), tail_level(raw)
    if t0 <= 0 or (t0 - t1) < TOTAL_FELL * t0 or (s0 - s1) >= STUCK * s0 or s1 > ROSE * s0:
        return None   # (a VAE's KL term starts near 0 and rises by design: not a task left unlearned)
    name = sig.train_loss[0]
    return Finding(
        symptom="loss_term_dominates", severity="warning", first_step=int(steps[0]), last_step=int(steps[-1]),
        title=(f"{big} outweighed {small} {start[big] / start[small]:.0f}x in {name}: {small} barely moved "
               f"({fmt(r0)} -> {fmt(r1)}) while {name} fell {(t0 - t1) / t0:.1%}"),
        evidence=[
            Evidence(series=big, steps=[int(steps[0])], values=[round(start[big], 6)], threshold=OUTWEIGHS,
                     text=(f"at the start {big} made {fmt(start[big])} of {name}'s {fmt(t0)} and {small} "
                           f"{fmt(start[small])} ({start[big] / start[small]:.0f}x; threshold {OUTWEIGHS:g}x): the "
                           f"gradients, and so the updates, followed {big}")),
            Evidence(series=small, steps=[int(steps[0]), int(steps[-1])], values=[r0, r1], threshold=STUCK,
                     text=(f"{small} went {fmt(r0)} -> {fmt(r1)}, {(r0 - r1) / r0:.1%} lower (threshold "
                           f"{STUCK:.0%}), while {name} fell {fmt(t0)} -> {fmt(t1)}: judged on the total, the run "
                           f"looks trained; the task behind {small} was not learned"))],
        facts={"big": big, "small": small, "ratio": round(start[big] / start[small], 3)})


SPEC = SymptomSpec(
    id="loss_term_dominates",
    looks_at="the training loss and the training metrics with \"loss\" in their name logged beside it (its terms)",
    fires_when=f"the terms, weighted by a non-negative least-squares fit, reproduce the training loss within "
               f"{FIT:.0%} at >= {FIT_SHARE:.0%} of >= {MIN_POINTS} steps; the largest is >= {OUTWEIGHS:g}x the "
               f"smallest at the start; the smallest fell < {STUCK:.0%} while the total fell >= {TOTAL_FELL:.0%} "
               "(warning)",
    detect=detect,
    priors={"loss_terms_unbalanced": 0.9},
    word="imbalance of the loss terms",
    needs=("loss",),
)
