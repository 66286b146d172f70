"""Does the training loss repeat itself every epoch? The trace of a data order that repeats.

With ``DataLoader(shuffle=False)`` every epoch feeds the same batches in the same order, and a
per-batch loss then repeats the same pattern every epoch: the loss of one batch depends more on
*which* batch it is than on the noise of sampling. Where the data set is stored grouped (an
``ImageFolder`` lists its files class by class; a CSV sorted by label, date or source), each
batch holds one group: the model is pulled towards the group it sees now and away from the
others, and the loss swings in long waves, the same waves every epoch.

The test is the autocorrelation of the step-to-step change of the log loss (differences remove
the downward trend of training; the log makes the pattern's size relative): a lag of L steps
whose correlation is high, and again at 2L, is a period of the data. Two readings of the
pattern found:

- *grouped*: the pattern moves in waves (neighbouring steps of the average epoch are alike)
  and the loss swings over a wide range within an epoch: each batch holds one group;
- *fixed order*: the batches repeat but neighbouring batches are unrelated: the order never
  changes, the groups are mixed.

An LR schedule that restarts (cyclic LR, cosine with warm restarts) repeats the loss with it:
such runs are left alone (``lr_cycles``).
"""
from __future__ import annotations

import numpy as np

MIN_PERIOD = 8        # steps: shorter repeats are alternating tasks or data sources, done on purpose
MIN_PERIODS = 3       # full periods in the judged part of the run
PEAK = 0.3            # autocorrelation of the changes at the period (white noise: ~1/sqrt(n))
REPEAT = 0.3          # ... on average over its first multiples
CONTRAST = 0.3        # ... above the autocorrelation half a period away
MULTIPLES = 8         # multiples of a lag averaged
# PEAK and REPEAT at least this many noise sigmas (1 / sqrt(n) for n changes): a short run's
# correlations are noisy, and the best of its ~n/3 lags passed 0.3 by chance (nanoGPT's random
# batch offsets, 99 steps: 0.32 and 0.33 at a lag of 18)
NOISE_SIGMAS = 4.0
# lag-1 autocorrelation of the average epoch's pattern: "grouped" at or above this and 2 / sqrt(period)
# (batches of unrelated difficulty give 0 +- 1 / sqrt(period): a short epoch looks wavy by chance)
SMOOTH = 0.4
WIDE_SWING = 1.0      # log-loss range of the average epoch (e ** 1 = 2.7x) for "grouped"
SKIP_HEAD = 0.1       # the first tenth of the run (the fast initial descent) is left out
MAX_POINTS = 300_000  # the last points judged (epochs up to 100k logged steps): an FFT of more costs ~1 s


def regular_stride(steps) -> int | None:
    """The step stride of a loss logged at regular steps (>= 95 % of the gaps alike), or None."""
    gaps = np.diff(np.asarray(steps, dtype=np.int64))
    if gaps.size < 2 or np.any(gaps <= 0):
        return None
    if np.all(gaps == gaps[0]):          # nearly always: no sort needed
        return int(gaps[0])
    values, counts = np.unique(gaps, return_counts=True)
    best = int(np.argmax(counts))
    return int(values[best]) if counts[best] >= 0.95 * gaps.size else None


def autocorrelation(x) -> np.ndarray:
    """Unbiased autocorrelation of ``x`` (mean removed) at every lag, by FFT: ac[0] = 1."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    n = x.size
    size = 1 << int(2 * n - 1).bit_length()      # zero-padded to a power of 2: fast at any n
    spectrum = np.fft.rfft(x, size)
    raw = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    if raw[0] <= 0:
        return np.zeros(n)
    return np.clip((raw / raw[0]) * (n / np.maximum(n - np.arange(n), 1)), -1.0, 1.0)   # unbiased can pass 1


def lr_cycles(lr_values) -> bool:
    """Does the LR go back up after falling, twice or more (a cyclic or restarting schedule)?
    A warm-up then a decay rises once; a step decay never rises."""
    if lr_values is None or len(lr_values) < 3:
        return False
    d = np.diff(np.asarray(lr_values, dtype=np.float64))
    scale = np.max(np.abs(lr_values)) * 1e-6
    signs = np.sign(np.where(np.abs(d) > scale, d, 0.0))
    signs = signs[signs != 0]
    rises_after_fall = np.sum((signs[1:] > 0) & (signs[:-1] < 0)) if signs.size > 1 else 0
    return int(rises_after_fall) >= 2


def find_period(steps, values) -> dict | None:
    """The period of a repeating loss pattern, or None. Returns {"period" (steps), "lag"
    (points), "peak", "repeat", "smooth", "swing", "grouped", "peak_steps" and "peak_values" (where
    the average cycle peaks, in the last three cycles: steps and the loss there), "first_step",
    "last_step"}."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    if not ok.all():
        first_bad = int(np.argmin(ok))
        steps, values = steps[:first_bad], values[:first_bad]
    head = max(int(SKIP_HEAD * len(values)), len(values) - MAX_POINTS)
    steps, values = steps[head:], values[head:]
    stride = regular_stride(steps)
    if stride is None:
        return None
    n = len(values)
    if n < MIN_PERIODS * MIN_PERIOD + 1:
        return None
    x = np.log(values) if np.all(values > 0) else values / max(float(np.std(values)), 1e-300)
    d = np.diff(x)
    mad = float(np.median(np.abs(d - np.median(d))))
    if mad <= 0:
        return None
    d = np.clip(d, -8 * mad, 8 * mad)        # a spike or two must not make the pattern
    ac = autocorrelation(d)
    lag = _period_lag(ac, len(d))
    if lag is None:
        return None
    peak, repeat = float(ac[lag]), float(_combs(ac, [lag], len(d))[0])
    profile = epoch_profile(x, lag)
    smooth = _circular_lag1(profile)
    swing = float(profile.max() - profile.min())
    # where the average cycle peaks, in the last three cycles (blocks are aligned to the end)
    top = len(x) - lag + int(np.argmax(profile))
    at = [top - k * lag for k in (2, 1, 0) if top - k * lag >= 0]
    return {"period": lag * stride, "lag": lag, "peak": peak, "repeat": repeat, "smooth": smooth,
            "swing": swing if np.all(values > 0) else float("nan"),
            "grouped": bool(smooth >= max(SMOOTH, 2 / np.sqrt(lag)) and swing >= WIDE_SWING and np.all(values > 0)),
            "peak_steps": [int(steps[i]) for i in at], "peak_values": [float(values[i]) for i in at], "first_step": int(steps[0]), "last_step": int(steps[-1])}


def _combs(ac, lags, n: int) -> np.ndarray:
    """Mean autocorrelation at the first ``MULTIPLES`` multiples of each lag up to 2/3 of the
    series (a period repeats at every multiple; a model whose pattern alternates between two
    epochs is weaker at the period itself than at twice it); NaN below two multiples."""
    lags = np.asarray(lags)
    limit = (2 * n) // 3
    total, count = np.zeros(len(lags)), np.zeros(len(lags))
    for k in range(1, MULTIPLES + 1):
        inside = k * lags <= limit
        total[inside] += ac[k * lags[inside]]
        count += inside
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, total / count, np.nan)


def _period_lag(ac, n: int) -> int | None:
    """The shortest lag (>= MIN_PERIOD, <= n / MIN_PERIODS) whose multiples correlate on average
    >= ``REPEAT`` and nearly as much as the best lag's, with >= ``PEAK`` at the lag itself and
    a dip half a period away (a smooth curve, full-batch training, correlates at every lag)."""
    top = n // MIN_PERIODS
    if top <= MIN_PERIOD:
        return None
    lags = np.arange(MIN_PERIOD, top + 1)
    comb = _combs(ac, lags, n)
    half = lags // 2
    dip = (ac[half - 1] + ac[half] + ac[half + 1]) / 3
    noise = NOISE_SIGMAS / np.sqrt(n)
    ok = (ac[lags] >= max(PEAK, noise)) & (comb >= max(REPEAT, noise)) & (ac[lags] - np.maximum(dip, 0.0) >= CONTRAST)
    if not ok.any():
        return None
    # the fundamental: the shortest lag nearly as good as the best (which may be 2 or 10
    # periods); half a period shares only every other multiple, so it averages far less
    best = float(comb[ok].max())
    return int(lags[np.flatnonzero(ok & (comb >= 0.85 * best))[0]])


def epoch_profile(x, lag: int) -> np.ndarray:
    """The average pattern over the periods of ``x``, after taking out each period's own level
    (a moving mean over exactly one period removes the trend, not the pattern)."""
    k = len(x) // lag
    blocks = np.asarray(x[len(x) - k * lag:]).reshape(k, lag)
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    return blocks.mean(axis=0)


def _circular_lag1(profile) -> float:
    p = profile - profile.mean()
    denom = float(np.dot(p, p))
    return float(np.dot(p, np.roll(p, 1)) / denom) if denom > 0 else 0.0
