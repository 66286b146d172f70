"""``slow_convergence``: the loss was still falling steadily when the run ended (info).

Not a failure: the run stopped before the loss levelled off. Either train longer, or the LR is
too low for the number of steps given (an LR range test finds a larger one that still trains).
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding, Fix
from ..causes import lr_from_update_ratio, settings_slow_training
from ..context import MIN_LOSS_POINTS
from ..series import as_series, finite_prefix, fmt, head_level, rounded, smooth_curve
from ..spec import SymptomSpec


def detect_slow_convergence(steps, values, *, series="train/loss", min_progress=0.1, last_share=0.15, min_drop=0.02,
                            steady=0.6, still=0.25, min_points=MIN_LOSS_POINTS) -> Finding | None:
    """Over the last quarter of the run the smoothed loss made more than ``last_share`` of the
    run's whole progress (and fell more than ``min_drop`` of its final level), at least ``steady``
    x as much as over the quarter before (no levelling off), and its last eighth still made
    ``still`` of that fall; the run made ``min_progress`` (relative) in all. A converged run makes a few
    % of its progress in its last quarter; a steady descent 25 %."""
    steps, values = finite_prefix(*as_series(steps, values))
    if len(values) < min_points:
        return None
    s_steps, s = smooth_curve(steps, values)
    if len(s) < 8:
        return None
    init, end = head_level(values), float(s[-1])
    if init <= 0 or end <= 0 or init - end < min_progress * init:
        return None
    q2, q3, q7 = (int(q * (len(s) - 1)) for q in (0.5, 0.75, 0.875))
    drop_last, drop_prev, drop_end = float(s[q3] - s[-1]), float(s[q2] - s[q3]), float(s[q7] - s[-1])
    share = drop_last / (init - end)
    if share < last_share or drop_last < min_drop * end or drop_last < steady * max(drop_prev, 0.0) \
            or drop_end < still * drop_last:
        return None
    return Finding(
        symptom="slow_convergence", severity="info",
        title=f"{series} was still falling at the end: {fmt(float(s[q3]))} -> {fmt(end)} over the last quarter",
        first_step=int(s_steps[q3]), last_step=int(s_steps[-1]),
        evidence=[Evidence(
            series=series, threshold=last_share,
            text=(f"smoothed {series} fell {fmt(drop_last)} over the last quarter of the run, {share:.0%} of the "
                  f"run's whole progress (threshold {last_share:.0%}), {drop_last / max(drop_prev, 1e-12):.2g}x its "
                  f"fall over the quarter before (threshold {steady:g}x: not levelling off); the last eighth alone "
                  f"{drop_end / drop_last:.0%} of it (threshold {still:.0%})"),
            steps=[int(s_steps[q2]), int(s_steps[q3]), int(s_steps[-1])], values=rounded([s[q2], s[q3], end]))],
        facts={"speedup": round(drop_last / max(drop_prev, 1e-12), 3)},
    )


def detect(sig, ctx):
    # a live run still falling has simply not ended: "train longer" is what it is doing
    return None if ctx.nan_step is not None or sig.live else ctx.on_loss_curve(detect_slow_convergence)


# Warnings that show the LR too high: a slow descent beside them is no sign of an LR too low.
LR_TOO_HIGH_FINDINGS = ("weight_growth", "loss_blowup")
LR_DECAY = 3.0      # the LR fell this many times from its peak by the end: a decaying schedule
SPEEDUP = 1.5       # the last quarter fell this many times the quarter before: the descent speeds up


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_low=True)
    settings_slow_training(s, ctx)
    if f.facts.get("speedup", 0.0) >= SPEEDUP and "lr_too_low" not in s.why and not ctx.warmup_unfinished:
        # falling faster than the quarter before: leaving a plateau (an LSTM past its unigram
        # level), not an LR too small; "raise the LR 10x" blew word_language_model up
        s.score.pop("lr_too_low", None)
    high = _lr_shown_too_high(ctx)
    if high is None:
        return
    s.score.pop("lr_too_low", None)    # "reduce the LR 10x" there, "re-run with LR x10" here
    decay = _lr_decay(ctx)
    if decay is not None:
        s.boost("lr_too_high", 0.6, f"the loss fell as the LR decayed from {decay[0]:.3g} to {decay[1]:.3g}, and "
                                    f"{high} shows the LR too high: the run trains better at the smaller LR")


def _lr_shown_too_high(ctx):
    return next((sym for sym in LR_TOO_HIGH_FINDINGS if sym in ctx.found), None)


def _lr_decay(ctx):
    """(peak LR, last LR) when the LR schedule decayed ``LR_DECAY`` x or more from its peak."""
    v = ctx.lr_values
    if v is None or len(v) < 2:
        return None
    peak, last = float(np.max(v)), float(v[-1])
    return (peak, last) if peak >= LR_DECAY * last else None


def settle(f, ctx):
    """A slow descent that an Adam eps >= 10x the gradients' RMS explains is a warning: training longer
    is not the fix. (A Dropout at p >= 0.8 has its own warning, strong_dropout.)"""
    if ctx.eps_too_large or ctx.warmup_unfinished:    # nor with a warm-up that never reached its LR
        f.severity = "warning"
    return True


def fixes(f, ctx):
    if ctx.warmup_unfinished:     # longer would only warm up further: the schedule is the fix (causes)
        return []
    if _lr_shown_too_high(ctx) and _lr_decay(ctx):   # it fell as a too-high LR decayed: lower the LR
        return []
    return [Fix("train_longer", "train longer: the loss was still falling steadily when the run ended")]


SPEC = SymptomSpec(
    id="slow_convergence",
    looks_at="training loss, smoothed",
    fires_when="the last quarter of the run made > 15 % of its whole progress, >= 0.6x the quarter before and its "
               "last eighth >= 25 % of that (not levelling off), after >= 10 % progress (info; a warning with an "
               "Adam eps >= 10x the gradients' RMS)",
    detect=detect,
    priors={"lr_too_low": 0.5},
    word="slow descent",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss",),
)
