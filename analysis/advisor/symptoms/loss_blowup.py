"""``loss_blowup``: the training loss shot far above its first value, stayed there for a while,
and came back down.

An LR far too high for the first updates (no warm-up, no clipping): nanoGPT at LR 3 goes
4.6 -> 270 within three steps and takes ~160 steps to fall back below where it started. The
recovery hides it from the other loss rules, which measure progress from the curve's initial
*level* (its first points, already blown up): the run looked like one that made great progress
("no problems found"). Here the reference is the loss's first value, taken before any update.
A one- or two-point excursion is ``loss_spikes``; a loss that never comes back, ``divergence``.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ...findings import Evidence, Finding
from ..causes import lr_from_update_ratio
from ..context import MIN_LOSS_POINTS
from ..series import as_series, finite_prefix, fmt, rounded, smooth_curve
from ..spec import SymptomSpec

FACTOR = 3.0      # smoothed level over the first value: the model is far worse than untrained
BACK = 2.0        # ... and back under this factor at the end (above it, divergence judges the run)


def detect_blowup(steps, values, *, series="train/loss", factor=FACTOR, back=BACK,
                  min_points=MIN_LOSS_POINTS) -> Finding | None:
    """The smoothed level (bin median + running median: single spikes do not move it) rose above
    ``factor`` x the first value, and ended below ``back`` x it."""
    steps, values = finite_prefix(*as_series(steps, values))
    if len(values) < min_points:
        return None
    first = float(values[0])
    if not first > 0:      # a loss that takes both signs has no scale to blow up against
        return None
    s_steps, s = smooth_curve(steps, values)
    i_peak = int(np.argmax(s))
    level, end = float(s[i_peak]), float(s[-1])
    if level < factor * first or end >= back * first:
        return None
    up = np.flatnonzero(s > factor * first)
    up_at = int(s_steps[up[0]])
    since = f" from step {up_at}" if up_at > int(steps[0]) else ""
    below = np.flatnonzero(s[i_peak:] <= first)
    i_back = i_peak + int(below[0]) if len(below) else None
    back_at = int(s_steps[i_back]) if i_back is not None else None
    # the raw peak where the level was up: the running median smears the level back to step 0
    # ("4.63 -> 224 at step 0"), the loss was 452 at step 4
    window = (steps <= int(s_steps[up[-1]])) & (steps > int(steps[0]))
    peak, peak_step = level, int(s_steps[i_peak])
    if window.any():
        i_raw = int(np.argmax(np.where(window, values, -np.inf)))
        peak, peak_step = float(values[i_raw]), int(steps[i_raw])
    recovery = (f"took until step {back_at} to come back below it" if back_at is not None
                else f"ended at {fmt(end)} ({end / first:.2g}x it)")
    last = back_at if back_at is not None else int(s_steps[-1])
    return Finding(
        symptom="loss_blowup", severity="warning",
        title=f"{series} blew up to {peak / first:.3g}x its first value ({fmt(first)} -> {fmt(peak)} at step "
              f"{peak_step}) and {recovery}",
        first_step=int(steps[0]), last_step=last,
        evidence=[Evidence(
            series=series, threshold=factor,
            text=(f"{series} rose from {fmt(first)} (its first value, before any update) to {fmt(peak)} at step "
                  f"{peak_step}, its smoothed level to {fmt(level)}, above {factor:g}x the first value{since} (threshold "
                  f"{factor:g}x): the model was far worse than untrained; it "
                  + (f"fell back below its first value at step {back_at} and ended at {fmt(end)}" if back_at is not None
                     else f"ended at {fmt(end)}, {end / first:.2g}x its first value")),
            steps=[int(steps[0]), peak_step, last], values=rounded([first, peak, end]))],
        facts={"first": first, "peak": peak, "peak_step": peak_step, "back_step": back_at},
    )


def detect(sig, ctx):
    if "divergence" in ctx.found or ctx.facts("no_progress").get("exploded_then_settled"):
        return None       # those findings tell the explosion themselves
    f = ctx.on_loss_curve(detect_blowup)
    if f is not None:
        _grad_norm_evidence(f, sig.scalars.get(SYS_GRAD_NORM))
    return f


def _grad_norm_evidence(f, series) -> None:
    """The gradients over the blow-up, when recorded: they usually grew with it."""
    if series is None:
        return
    steps, values = series
    keep = np.isfinite(values) & (steps <= f.last_step)
    steps, values = steps[keep], values[keep]
    if len(values) < 2 or not values[0] > 0:
        return
    i = int(np.argmax(values))
    if values[i] < 5 * values[0]:
        return
    f.evidence.append(Evidence(
        series=SYS_GRAD_NORM, steps=[int(steps[0]), int(steps[i])], values=rounded([values[0], values[i]]),
        text=f"meanwhile {SYS_GRAD_NORM} went from {fmt(float(values[0]))} to {fmt(float(values[i]))} at step "
             f"{int(steps[i])} ({values[i] / values[0]:.3g}x)"))


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    if not ctx.warmed_up:
        s.boost("lr_too_high", 0.8, "the loss blew up in the first updates, at full LR: no warm-up"
                                    + ("" if ctx.clips else ", no clipping seen"))


SPEC = SymptomSpec(
    id="loss_blowup",
    looks_at="training loss (smoothed) against its first value, taken before any update; `sys/grad_norm` as evidence",
    fires_when=f"the smoothed level rises above {FACTOR:g}x the first value and ends below {BACK:g}x it (blown up, then "
               "recovered: the curve's initial level, used by the other loss rules, is already blown up) (warning)",
    detect=detect,
    priors={"lr_too_high": 0.6, "numerical_instability": 0.15, "input_scaling": 0.1, "bad_init": 0.1},
    word="blow-up",
    adjust=adjust,
    needs=("loss",),
)
