"""Rules over loss curves: divergence, oscillation, spikes, no progress, early plateau, overfitting.

All rules take ``steps`` and ``values`` arrays (any sampling rate: every step, or a
validation loss every N steps) and return a ``Finding`` without causes (``causes.py``
ranks those from all the evidence together) or None.

Robustness, common to all of them:
- only the part before the first NaN/Inf is used (``nan_rules`` reports the rest);
- the curve's *level* is a bin-median followed by a running median, so minibatch noise
  and single spikes do not move it;
- thresholds are relative to the run's own scale: the initial level and the progress
  made so far (initial level - best level), never absolute loss values;
- fewer than ``min_points`` points: the rule says nothing.
Thresholds were tuned on the scenario suite (tests/scenarios.py): healthy runs of six
architectures/optimisers stay far below them (see analysis/ADVISOR.md).
"""
from __future__ import annotations

import numpy as np

from ..findings import Evidence, Finding
from .series import (as_series, finite_prefix, first_nonfinite, fmt, head_level, rolling_median, rounded,
                     smooth_curve, tail_level, true_runs)


def _scale(init: float) -> float:
    return max(abs(init), 1e-12)


def excess_over_best(steps, values, min_progress_frac: float = 0.2):
    """Smoothed curve and how far it sits above its best-so-far level.

    The excess is measured in units of the progress made (initial level - best level), but
    at least ``min_progress_frac`` x initial level, so a flat noisy curve never looks like
    it is "rising" by a large fraction of a tiny progress.
    Returns (smoothed_steps, smoothed, excess, init, unit).
    """
    s_steps, s = smooth_curve(steps, values)
    init = head_level(values)
    unit = max(init - float(np.min(s)), min_progress_frac * _scale(init))
    excess = (s - np.minimum.accumulate(s)) / unit
    return s_steps, s, excess, init, unit


def detect_divergence(steps, values, *, series="train/loss", rise_frac=0.5, tail_frac=0.1, above_first=2.0,
                      min_points=20) -> Finding | None:
    """The loss level rose back by more than ``rise_frac`` of the progress made, to the end;
    or it ended more than ``above_first`` x above its first value, the loss before any update
    (a loss that jumped 50x in the first steps never made progress to rise back from).

    Sustained: every smoothed point of the last ``tail_frac`` of the run is above the
    threshold (a transient bump is ``loss_oscillation``, a single point ``loss_spikes``).
    """
    steps, values = as_series(steps, values)
    bad = first_nonfinite(values)
    steps, values = finite_prefix(steps, values)
    if len(values) < min_points:
        return None
    s_steps, s, excess, init, unit = excess_over_best(steps, values)
    k = max(3, int(round(len(s) * tail_frac)))
    i_best = int(np.argmin(s))
    if i_best >= len(s) - k or not np.all(excess[-k:] > rise_frac):
        return _above_first_value(steps, values, s_steps, s, k, series, bad, factor=above_first)
    over = np.flatnonzero(excess[i_best:] > rise_frac)
    i_rise = i_best + int(over[0])
    end = float(s[-1])
    if bad is None and _rise_within_signed_noise(values, end - float(s[i_best])):
        return None
    severity = "error" if (bad is not None or end > 2 * _scale(init)) else "warning"
    tail_note = " and then became non-finite" if bad is not None else ""
    # A curve whose smoothed best is above its first points never improved: it rose from the start
    # ("rose from its best 2.39 ... (initial level 2.06)" read as a contradiction).
    never_better = float(s[i_best]) > init
    start = (f"from {fmt(init)} (its start)" if never_better
             else f"from {fmt(s[i_best])} (step {int(s_steps[i_best])})")
    rose = (f"never went below its initial level {fmt(init)} (smoothed low {fmt(s[i_best])} at step "
            f"{int(s_steps[i_best])}), ended at {fmt(end)}" if never_better else
            f"rose from its best {fmt(s[i_best])} at step {int(s_steps[i_best])} to {fmt(end)}")
    measure = (f"{excess[-1]:.3g}x a fifth of the initial level above its low" if never_better
               else f"{excess[-1]:.3g}x the progress made (initial level {fmt(init)})")
    return Finding(
        symptom="divergence", severity=severity,
        title=f"{series} diverged: rose {start} to {fmt(end)}{tail_note}",
        first_step=int(s_steps[i_best]), last_step=int(s_steps[-1]),
        evidence=[Evidence(
            series=series,
            text=(f"smoothed {series} {rose} and stayed up: {measure}; "
                  f"threshold {rise_frac}x, sustained over the last {k} smoothed points"),
            steps=[int(s_steps[i_best]), int(s_steps[i_rise]), int(s_steps[-1])],
            values=rounded([s[i_best], s[i_rise], end]), threshold=rise_frac)],
    )


SIGNED_SHARE = 0.1     # this share of negative values: a loss with no floor at 0
SIGNED_NOISE_RISES = 3.0


def _rise_within_signed_noise(values, rise) -> bool:
    """A loss that takes both signs (a policy-gradient surrogate such as REINFORCE's
    ``-log_prob * normalised_return``, a critic's score) has no floor to measure progress
    against: its level wanders within the noise of its values, which grows with the episode
    length. Its rise counts as divergence only beyond ``SIGNED_NOISE_RISES`` x the spread
    (interquartile range) of the values about their local level (a running median of 9)."""
    if np.mean(values < 0) < SIGNED_SHARE or np.mean(values > 0) < SIGNED_SHARE:
        return False
    sample = values[:: max(1, len(values) // 20_000)]   # a long run: its trend is as clear strided
    residual = sample - rolling_median(sample, 9)
    spread = float(np.subtract(*np.percentile(residual, [75, 25])))
    return rise < SIGNED_NOISE_RISES * spread


def _above_first_value(steps, values, s_steps, s, k, series, bad, *, factor):
    """Divergence from the start: the smoothed level of the last ``k`` points all above ``factor`` x the first value."""
    first = float(values[0])
    if first <= 0 or not np.all(s[-k:] > factor * first):
        return None
    i_rise = int(np.argmax(s > factor * first))
    end = float(s[-1])
    return Finding(
        symptom="divergence", severity="error" if bad is not None else "warning",
        title=f"{series} diverged from the start: {fmt(first)} at step {int(steps[0])}, {fmt(end)} at the end"
              + (" and then non-finite" if bad is not None else ""),
        first_step=int(steps[0]), last_step=int(s_steps[-1]),
        evidence=[Evidence(
            series=series, threshold=factor,
            text=(f"smoothed {series} ended at {fmt(end)}, {end / first:.3g}x its first value {fmt(first)} (the loss "
                  f"before any update; threshold {factor:g}x, sustained over the last {k} smoothed points): it never "
                  "came down to where it started"),
            steps=[int(steps[0]), int(s_steps[i_rise]), int(s_steps[-1])], values=rounded([first, s[i_rise], end]))],
        facts={"from_start": True},
    )


def detect_oscillation(steps, values, *, series="train/loss", swing=0.35, min_height=0.015, min_progress=0.2,
                       min_share=0.5, min_returns=2, min_points=20) -> Finding | None:
    """After real progress, the loss level keeps sitting well above the best it already reached.

    A point of the smoothed level is *up* when it is above its best-so-far by more than
    ``swing`` x that best level (measured against the loss level, so a loss bouncing
    0.15 <-> 0.6 after falling from 2.0 counts; units of the progress made hid it) and by
    more than ``min_height`` x the initial level (so a converged loss wobbling between
    0.002 and 0.004 does not). Fires when, after the best-so-far first fell by ``min_progress``
    of the initial level, at least ``min_share`` of the points are up (the typical point,
    not a few lucky ones: a flat noisy loss never made progress, and a run that settled
    spends most of its time near its best), and the level came back down at least
    ``min_returns`` times (a climb that never returns is ``divergence``).

    ``swing`` 0.35 (was 0.15): on the scenario suite (3 seeds x 1 and 2 threads) the median point
    of Adam at LR 0.05 sits 0.59-1.29x its best level above it, a healthy noisy regression (MSE
    of minibatches from a heavy-tailed target) 0.10-0.25x, which 0.15 took for oscillation.
    """
    steps, values = as_series(steps, values)
    steps, values = finite_prefix(steps, values)
    if len(values) < min_points:
        return None
    s_steps, s = smooth_curve(steps, values)
    init = head_level(values)
    best = np.minimum.accumulate(s)
    progressed = best <= init - min_progress * _scale(init)
    if not progressed.any():
        return None
    i0 = int(np.argmax(progressed))
    excess = s - best
    up = (excess > swing * np.abs(best)) & (excess > min_height * _scale(init))
    up[:i0] = False
    share = float(up[i0:].mean())
    climbs = true_runs(up)
    returns = [c for c in climbs if c[1] < len(s)]
    if share < min_share or len(returns) < min_returns:
        return None
    peaks = [a + int(np.argmax(excess[a:b])) for a, b in climbs]
    top = max(peaks, key=lambda i: excess[i])
    return Finding(
        symptom="loss_oscillation", severity="warning",
        title=(f"{series} oscillates: after step {int(s_steps[i0])} it sat well above its best level "
               f"{share:.0%} of the time and climbed back up {len(climbs)} times"),
        first_step=int(s_steps[climbs[0][0]]), last_step=int(s_steps[climbs[-1][1] - 1]),
        evidence=[Evidence(
            series=series,
            text=(f"smoothed {series} was more than {swing:.0%} above its best-so-far level (and more than "
                  f"{min_height:.1%} of its initial level {fmt(init)} above it) at {share:.0%} of the points after "
                  f"step {int(s_steps[i0])} (threshold {min_share:.0%}); it came back down {len(returns)} times; "
                  f"largest climb to {fmt(s[top])} from a best of {fmt(best[top])}"),
            steps=[int(s_steps[p]) for p in peaks[:50]], values=rounded(s[peaks[:50]]), threshold=swing)],
    )


def detect_spikes(steps, values, *, series="train/loss", factor=3.0, min_height=0.5, window=20,
                  max_width=3, min_points=20) -> Finding | None:
    """Isolated points far above the recent level that the curve comes back from.

    A spike: value > ``factor`` x the 90th percentile of the previous ``window`` points (the relative
    test, which ignores a loss of 2.5 among 2.0s) AND exceeding it by more than
    ``min_height`` x the initial level (the absolute test, which ignores a batch of 0.03
    among 0.003s at the end of a converged run). ``max_width``: longer excursions are
    oscillation or divergence. Blockwise medians keep this O(n) on a million points.
    Spike rule in the spirit of Megatron-LM's loss-spike check (loss far above its recent
    level) with the factor tuned on the suite.
    """
    steps, values = as_series(steps, values)
    steps, values = finite_prefix(steps, values)
    n = len(values)
    if n < min_points:
        return None
    window = max(3, min(window, n // 4))
    nblocks = n // window
    blocks = values[: nblocks * window].reshape(nblocks, window)
    block_med = np.percentile(blocks, 90, axis=1)     # the recent *upper* level: noise tails are not spikes
    ref = np.full(n, np.nan)
    ref[window: nblocks * window] = np.repeat(block_med[:-1], window)
    ref[nblocks * window:] = block_med[-1]
    init = head_level(values)
    with np.errstate(invalid="ignore"):
        high = values > factor * ref
        tall = values - ref > min_height * _scale(init)
    # An excursion is delimited by the relative test alone: a loss that jumps and decays over 20
    # points (curriculum learning's harder data) crossed the absolute height test up and down
    # on its way and read as several 1-3 point "spikes"
    runs = [(a, b) for a, b in true_runs(high) if b - a <= max_width and tall[a:b].any()]
    if not runs:
        return None
    idx = np.array([a + int(np.argmax(values[a:b])) for a, b in runs])
    count = len(idx)
    return Finding(
        symptom="loss_spikes", severity="warning" if count >= 2 else "info",
        title=f"{series} spiked {count} time{'s' if count > 1 else ''} (up to {fmt(values[idx].max())} "
              f"against a recent level of {fmt(float(np.nanmedian(ref[idx])))})",
        first_step=int(steps[idx[0]]), last_step=int(steps[idx[-1]]),
        evidence=[Evidence(
            series=series,
            text=(f"{count} point(s) above {factor}x the 90th percentile of the previous {window} points and more than "
                  f"{min_height} x the initial level ({fmt(init)}) above it, back down within {max_width} points"),
            steps=steps[idx[:50]].tolist(), values=rounded(values[idx[:50]]), threshold=factor)],
    )


def detect_no_progress(steps, values, *, series="train/loss", min_improvement=0.05, min_points=20) -> Finding | None:
    """The loss never improved by ``min_improvement`` (relative) of its initial level."""
    steps, values = as_series(steps, values)
    steps, values = finite_prefix(steps, values)
    if len(values) < min_points:
        return None
    _, s = smooth_curve(steps, values)
    # The first value is the loss before any update: a loss that shot up in the first steps must
    # not lift the initial level (2.3 -> 1702 -> 2.3 made no progress at all).
    init = head_level(values)
    if init > 3 * float(values[0]) > 0:
        init = float(values[0])
    end = tail_level(values)
    # "Best" is the level the curve held for a while (10th percentile of the smoothed curve), not
    # its lowest dip: a noisy flat loss dips 20 % below its level for a few batches.
    best = float(np.percentile(s, 10))
    scale = _scale(init)
    if (init - best) >= 2 * min_improvement * scale or (init - end) >= min_improvement * scale:
        return None
    if end - init > 2 * min_improvement * scale:       # it is going up: divergence's business
        return None
    return Finding(
        symptom="no_progress", severity="warning",
        title=f"{series} barely moved: {fmt(init)} -> {fmt(end)} over {int(steps[-1] - steps[0])} steps",
        first_step=int(steps[0]), last_step=int(steps[-1]),
        evidence=[Evidence(
            series=series,
            text=(f"{series} went from {fmt(init)} (median of the first points) to {fmt(end)} (median of the last "
                  f"10 %): {_change(init, end, scale)}; threshold {100 * min_improvement:.0f} % better"),
            steps=[int(steps[0]), int(steps[-1])], values=rounded([init, end]), threshold=min_improvement)],
    )


def _change(init: float, end: float, scale: float) -> str:
    gain = 100 * (init - end) / scale
    return f"{gain:.1f} % better" if gain >= 0 else f"{-gain:.1f} % worse"


def detect_early_plateau(steps, values, *, series="train/loss", plateau_by=0.3, stall_frac=0.1, high_level=0.3,
                         min_improvement=0.05, min_points=20) -> Finding | None:
    """Progress stopped early (by ``plateau_by`` of the run) at a level still high.

    Fires when the loss made some progress (> ``min_improvement``), everything after the
    first ``plateau_by`` of the run improved it by less than ``stall_frac`` of the total
    progress, and the final level is still above ``high_level`` x the initial level (a run
    that converged fast to a low loss is not a plateau). Losses that can be negative or
    whose floor is far from zero (a regression with large irreducible noise) can trip it:
    it is a warning, not an error.
    """
    steps, values = as_series(steps, values)
    steps, values = finite_prefix(steps, values)
    if len(values) < min_points:
        return None
    s_steps, s = smooth_curve(steps, values)
    init = head_level(values)
    end = tail_level(values)
    if init <= 0:
        return None
    progress = init - end
    if progress < min_improvement * init or end < high_level * init:
        return None
    j = int(plateau_by * (len(s) - 1))
    late = float(s[j]) - end
    if late >= stall_frac * progress:
        return None
    best = float(np.min(s))
    if end - best > 0.5 * (init - best):   # it got far lower and came back up: divergence/oscillation,
        return None                        # not a stall (a run that fell to 0.02 "stalled at 0.6 from step 1")
    onset = int(np.flatnonzero(s <= end + stall_frac * progress)[0]) if np.any(s <= end + stall_frac * progress) else j
    onset = min(onset, j)
    return Finding(
        symptom="early_plateau", severity="warning",
        title=f"{series} stalled at {fmt(end)} ({end / init:.0%} of its initial {fmt(init)}) from step {int(s_steps[onset])}",
        first_step=int(s_steps[onset]), last_step=int(s_steps[-1]),
        evidence=[Evidence(
            series=series,
            text=(f"after {plateau_by:.0%} of the run (step {int(s_steps[j])}) {series} "
                  + (f"improved only {fmt(late)}, {late / progress:.0%} of its total progress" if late > 0 else
                     f"did not improve at all (it rose by {fmt(-late)})")
                  + f" (threshold {stall_frac:.0%} of the progress), and it ended at "
                  f"{end / init:.0%} of its initial level (threshold {high_level:.0%})"),
            steps=[int(s_steps[0]), int(s_steps[onset]), int(s_steps[-1])], values=rounded([init, s[onset], end]),
            threshold=stall_frac)],
    )


def detect_overfitting(train_steps, train_values, val_steps, val_values, *, train_series="train/loss",
                       val_series="val/loss", min_rise=0.1, sustain=3, min_points=10) -> Finding | None:
    """Validation loss rose ``min_rise`` (relative) above its best and stayed there while
    the training loss kept falling (or stayed flat).

    Sustained: the last ``sustain`` validation points (at least 10 % of them) are all above
    the threshold and above the best by more than 3 robust sigmas of the evaluation noise.
    On the scenario suite (3 seeds x 1 and 2 threads) the overfitting runs end 1.9-2.3x above
    that threshold; healthy runs have their best validation point in their last 10 %.
    A validation loss has few points (evaluated every N steps): ``min_points`` is 10.
    """
    vs, vv = finite_prefix(*as_series(val_steps, val_values))
    if len(vv) < min_points:
        return None
    sv = rolling_median(vv, 3)
    i_best = int(np.argmin(sv))
    best = float(sv[i_best])
    k = max(sustain, len(sv) // 10)
    if i_best >= len(sv) - k:
        return None
    # Evaluation noise from second differences over the whole series: they cancel a locally
    # linear trend, so neither the first fast descent nor the overfitting rise counts as noise
    # (first differences up to the best point took the descent for noise, and whether they were
    # used at all flipped with the best point's index 2 or 3 between seeds). For i.i.d. noise
    # var(d2) = 6 sigma^2; 1.4826 x median |.| is a robust sigma.
    noise = 1.4826 * float(np.median(np.abs(np.diff(vv, 2)))) / np.sqrt(6.0)
    threshold = max(best + min_rise * abs(best), best + 3 * noise)
    if not np.all(sv[-k:] > threshold):
        return None
    j = int(np.argmin(vv))   # the lowest value logged: the checkpoint to keep (the median's step may not be)
    evidence = [Evidence(
        series=val_series,
        text=(f"{val_series} (running median of 3) rose from its best {fmt(best)} at step {int(vs[i_best])} to "
              f"{fmt(sv[-1])} (+{(sv[-1] - best) / abs(best):.0%}; threshold +{min_rise:.0%}, sustained over the "
              f"last {k} evaluations); lowest value logged {fmt(float(vv[j]))} at step {int(vs[j])}"),
        steps=[int(vs[i_best]), int(vs[-1])], values=rounded([best, sv[-1]]), threshold=min_rise)]
    if train_values is not None and len(train_values) >= min_points:
        ts, tv = finite_prefix(*as_series(train_steps, train_values))
        if len(tv) < min_points:
            return None
        at_best = tv[(ts >= vs[max(0, i_best - 1)]) & (ts <= vs[min(len(vs) - 1, i_best + 1)])]
        if at_best.size == 0:
            return None
        t_best, t_end = float(np.median(at_best)), tail_level(tv)
        if t_end > t_best * 1.05 + 1e-12:
            return None     # training loss rose too: divergence, not overfitting
        evidence.append(Evidence(
            series=train_series,
            text=f"meanwhile {train_series} went from {fmt(t_best)} to {fmt(t_end)}",
            steps=[int(vs[i_best]), int(ts[-1])], values=rounded([t_best, t_end])))
    return Finding(
        symptom="overfitting", severity="warning",
        title=f"overfitting: {val_series} up {(sv[-1] - best) / abs(best):.0%} since step {int(vs[i_best])} while {train_series} fell",
        first_step=int(vs[i_best]), last_step=int(vs[-1]), evidence=evidence,
        facts={"best_step": int(vs[j]), "best_value": float(vv[j])},
    )


def detect_no_generalisation(train_steps, train_values, val_steps, val_values, *, train_series="train/loss",
                             val_series="val/loss", train_fall=0.05, untrained=0.95, near=2.0,
                             min_points=5) -> Finding | None:
    """The validation loss never got below the untrained level while the training loss fell:
    labels shuffled apart from their inputs (the model memorises pairs that mean nothing), or a
    validation set unlike the training data. Val loss 2.297 -> 2.348 around ln(10) = 2.303 for 15
    evaluations while train loss fell 2.32 -> 2.15 passed every rule: its rise (+2 %) is below
    overfitting's 10 %, the training loss's fall above no_progress's 5 %.

    Fires when every validation point stays above ``untrained`` x the training loss's first
    level (an untrained model's loss) and its best below ``near`` x that level, the last one
    above the first, and the training loss's final level is at least ``train_fall`` below its
    first. (A run that starts from a trained checkpoint has a first training loss of ~0.002 and
    a validation loss of ~0.04: far above, never near, that level, and not an untrained one.)"""
    if train_values is None:
        return None
    vs, vv = finite_prefix(*as_series(val_steps, val_values))
    ts, tv = finite_prefix(*as_series(train_steps, train_values))
    if len(vv) < min_points or len(tv) < 4 * min_points:
        return None
    t0, t_end = head_level(tv), tail_level(tv)
    if not (t0 > 0 and t_end <= (1 - train_fall) * t0):
        return None
    if not untrained * t0 <= float(np.min(vv)) <= near * t0 or not vv[-1] > vv[0]:
        return None
    return Finding(
        symptom="overfitting", severity="warning",
        title=f"{val_series} never improved: it stayed at the untrained level ({fmt(float(np.min(vv)))} at best) "
              f"while {train_series} fell",
        first_step=int(vs[0]), last_step=int(vs[-1]),
        evidence=[Evidence(series=val_series, threshold=untrained,
                           text=(f"{val_series} was never below {untrained:.0%} of the training loss's first level "
                                 f"{fmt(t0)} (an untrained model's): best {fmt(float(np.min(vv)))}, first "
                                 f"{fmt(float(vv[0]))}, last {fmt(float(vv[-1]))} over {len(vv)} evaluations"),
                           steps=[int(vs[0]), int(vs[-1])], values=rounded([float(vv[0]), float(vv[-1])])),
                  Evidence(series=train_series, text=f"meanwhile {train_series} fell from {fmt(t0)} to {fmt(t_end)}",
                           steps=[int(ts[0]), int(ts[-1])], values=rounded([t0, t_end]))],
        facts={"never_generalised": True},
    )


def exploded_then_settled(steps, values, *, factor=10.0, settle=0.5):
    """(step, peak, settled level) when the loss shot up ``factor`` x above its first value and its
    final level early in the run (in the first ``settle`` of it) and then came back down: the
    first updates were far too large (pytorch/examples mnist at --lr 40: 2.3 -> 1702 -> 2.30)."""
    steps, values = finite_prefix(*as_series(steps, values))
    if len(values) < 5:
        return None
    peak = int(np.argmax(values))
    settled = tail_level(values)
    if peak >= settle * len(values) or values[peak] <= factor * max(abs(float(values[0])), abs(settled), 1e-12):
        return None
    return int(steps[peak]), float(values[peak]), settled


def add_explosion_evidence(f, name, s, v) -> None:
    """Fact and evidence when the loss shot up early and came back (an LR far too high, not too low)."""
    boom = exploded_then_settled(s, v)
    if boom is None:
        return
    step, peak, settled = boom
    f.facts["exploded_then_settled"] = [step, peak, settled]
    f.evidence.append(Evidence(
        series=name, text=f"{name} first exploded to {fmt(peak)} at step {step} "
                          f"({peak / max(abs(float(v[0])), 1e-12):.0f}x its first value), then settled back at "
                          f"{fmt(settled)}: the level of a model that predicts nothing",
        steps=[int(s[0]), step, int(s[-1])], values=[float(v[0]), peak, settled]))
