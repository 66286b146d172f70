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
AGAIN = 2.5       # a later blow-up: the smoothed level over its lowest since the recovery ...
AGAIN_BINS = 3    # ... for this many smoothed points (a single bad batch is loss_spikes')


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
    again = _again(steps, values, s_steps, s, i_back) if i_back is not None else None
    if again is not None:
        recovery += (f", then blew up again ({fmt(again['settled'])} -> {fmt(again['peak'])} at step "
                     f"{again['peak_step']})")
        last = again["to"]
    f = Finding(
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
        facts={"first": first, "peak": peak, "peak_step": peak_step, "back_step": back_at, "again": again},
    )
    if again is not None:
        f.evidence.append(Evidence(
            series=series, threshold=AGAIN, steps=[again["from"], again["peak_step"], again["to"]],
            values=rounded([again["settled"], again["peak"]]),
            text=(f"after settling at {fmt(again['settled'])} it rose again to {fmt(again['peak'])} at step "
                  f"{again['peak_step']} ({again['peak'] / again['settled']:.3g}x; smoothed level above {AGAIN:g}x the "
                  f"settled level from step {again['from']} to {again['to']})")))
    return f


def _again(steps, values, s_steps, s, i_back) -> dict | None:
    """A later blow-up after the recovery: the smoothed level rose above ``AGAIN`` x its lowest
    since the recovery for ``AGAIN_BINS`` bins or more (nanoGPT at LR 3 settled at 3.4, then went
    to 23 at step 216 and back within ~30 steps; the first blow-up alone was reported)."""
    low = np.minimum.accumulate(s[i_back:])
    up = s[i_back:] > AGAIN * low
    if up.sum() < AGAIN_BINS:
        return None
    a = i_back + int(np.argmax(up))
    b = a + (int(np.argmax(~up[a - i_back:])) if not up[a - i_back:].all() else len(up) - (a - i_back)) - 1
    if b - a + 1 < AGAIN_BINS:
        return None
    settled, lo, hi = float(low[a - i_back]), int(s_steps[a]), int(s_steps[b])
    window = (steps >= lo) & (steps <= hi)
    i_raw = int(np.argmax(np.where(window, values, -np.inf)))
    return {"from": lo, "to": hi, "settled": settled, "peak": float(values[i_raw]), "peak_step": int(steps[i_raw])}


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
