"""``warmup_unfinished``: the LR schedule never reached its LR: still rising when the run ended,
or exactly 0 for a stretch of optimizer steps.

A warm-up longer than the run (``warmup_steps`` above the steps it got), or a per-update
schedule stepped once per epoch (timm's ``lr_at(epoch)`` where it expects the update count:
LR 0 for the whole first epoch, 0.24x the target at the end; validation loss 1.20 against
0.44). The curves look merely slow, so only ``slow_convergence`` named it, and a noisy loss
(mixup) did not trip that (trial 14). A live run's schedule has not ended: not judged.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_LR

from ...findings import Evidence, Finding
from ..series import fmt
from ..spec import SymptomSpec

MIN_ZERO_STEPS = 5        # optimizer steps at LR exactly 0 (a linear warm-up from 0 has one)
MIN_ZERO_SHARE = 0.02     # ... and this share of the run's steps


def detect(sig, ctx):
    if sig.live:
        return None
    series = sig.scalars.get(SYS_LR)
    if series is None:
        return None
    steps, lr = np.asarray(series[0]), np.asarray(series[1], dtype=np.float64)
    ok = np.isfinite(lr)
    steps, lr = steps[ok], lr[ok]
    if steps.size < 10 or not np.any(lr > 0):
        return None
    evidence = []
    zero = np.flatnonzero(lr == 0)
    stalled = zero.size >= max(MIN_ZERO_STEPS, MIN_ZERO_SHARE * steps.size)
    if stalled:
        evidence.append(Evidence(
            series=SYS_LR, steps=[int(steps[zero[0]]), int(steps[zero[-1]])], values=[0.0],
            text=f"the LR was exactly 0 at {zero.size} of {steps.size} optimizer steps (steps {int(steps[zero[0]])}–"
                 f"{int(steps[zero[-1]])}): those steps changed nothing"))
    v = ctx.lr_values
    if ctx.warmup_unfinished:
        evidence.append(Evidence(
            series=SYS_LR, steps=[int(ctx.lr_steps[0]), int(ctx.lr_steps[-1])], values=[float(v[0]), float(v[-1])],
            text=f"the LR rose {fmt(v[-1] / v[0])}x, from {fmt(v[0])} to {fmt(v[-1])}, and was still rising over the "
                 "last 10 % of the run" + ("" if stalled else
                                            " (a run stopped on purpose before its planned end had not got there "
                                            "yet: then nothing to fix)")))
    if not evidence:
        return None
    return Finding(
        symptom="warmup_unfinished", severity="warning",
        title=("the LR schedule never reached its LR: " +
               ("still rising when the run ended" if ctx.warmup_unfinished else f"LR 0 at {zero.size} steps")),
        first_step=int(steps[0]), last_step=int(steps[-1]), evidence=evidence,
        facts={"zero_steps": int(zero.size) if stalled else 0, "still_rising": bool(ctx.warmup_unfinished)})


def adjust(s, f, ctx):
    s.boost("lr_too_low", 0.9, "the schedule held the LR below the value it was heading for: the steps were "
                               "smaller than the LR set, for much of the run")


SPEC = SymptomSpec(
    id="warmup_unfinished",
    looks_at="`sys/lr`",
    fires_when="a finished run whose LR only rose, >= 5x, and still rose over its last 10 %; or an LR of exactly 0 "
               f"at >= {MIN_ZERO_STEPS} optimizer steps and >= {MIN_ZERO_SHARE:.0%} of them (warning)",
    detect=detect,
    priors={"lr_too_low": 0.9},
    word="unfinished warm-up",
    adjust=adjust,
)
