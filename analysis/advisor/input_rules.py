"""Rule over the model's input statistics (``sys/input_mean|std|min|max``)."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_INPUT_STD

from ..findings import Evidence, Finding
from .series import fmt, rounded


def detect_unnormalized(steps, mean, std, vmin=None, vmax=None, *, max_scale=5.0, min_scale=0.02, max_offset=2.0,
                        mild_offset=1.0, mild_ratio=1.5, min_points=3) -> Finding | None:
    """Inputs far from zero mean / unit scale.

    Standardised inputs (LeCun et al., Efficient BackProp 1998) have mean ~0 and std ~1;
    [0, 1] images (std ~0.3, mean < 1) are fine in practice. Fires when the typical RMS
    sqrt(mean^2 + std^2) is above ``max_scale`` or below ``min_scale``, or when the mean is
    more than ``max_offset`` and more than ``max_offset`` x std away from 0 (a large offset), or
    more than ``mild_offset`` and more than ``mild_ratio`` x std (raw measurements such as iris's
    0.1-7.9: mean 3.5, std 2). Medians over the recorded batches; a constant batch (std 0: batch
    size 1, all-ones or all-zero rows) says nothing about the data's scale and is left out.
    """
    steps = np.asarray(steps)
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(s) & (s > 0)
    if ok.sum() < min_points:
        return None
    mm, ss = float(np.median(m[ok])), float(np.median(s[ok]))
    rms = float(np.hypot(mm, ss))
    problems = []
    if rms > max_scale:
        problems.append(f"RMS {fmt(rms)} > {max_scale:g}")
    if rms < min_scale:
        problems.append(f"RMS {fmt(rms)} < {min_scale:g}")
    if abs(mm) > max_offset and abs(mm) > max_offset * ss:
        problems.append(f"|mean| {fmt(abs(mm))} > {max_offset:g} and > {max_offset:g} x std")
    elif abs(mm) > mild_offset and abs(mm) > mild_ratio * ss:
        problems.append(f"|mean| {fmt(abs(mm))} > {mild_offset:g} and > {mild_ratio:g} x std: raw, unscaled features")
    if not problems:
        return None
    rng, peak = "", rms
    if vmin is not None and vmax is not None:
        lo, hi = np.asarray(vmin, dtype=np.float64), np.asarray(vmax, dtype=np.float64)
        if np.isfinite(lo).any() and np.isfinite(hi).any():
            rng = f", range [{fmt(float(np.nanmin(lo)))}, {fmt(float(np.nanmax(hi)))}]"
            peak = max(rms, abs(float(np.nanmin(lo))), abs(float(np.nanmax(hi))))
    tiny = rms < min_scale and len(problems) == 1
    return Finding(
        symptom="unnormalized_inputs", severity="warning", facts={"tiny": tiny, "rms": rms, "peak": peak},
        title=(f"inputs are far below unit scale: mean {fmt(mm)}, std {fmt(ss)}{rng}" if tiny else
               f"inputs are not standardised: mean {fmt(mm)}, std {fmt(ss)}{rng}"),
        first_step=int(steps[ok][0]), last_step=int(steps[ok][-1]),
        evidence=[Evidence(
            series=SYS_INPUT_STD, threshold=max_scale,
            text=f"model input: median mean {fmt(mm)}, median std {fmt(ss)}{rng}: " + "; ".join(problems)
                 + " (standardised inputs have mean 0, std 1)",
            steps=[int(steps[ok][0]), int(steps[ok][-1])], values=rounded([mm, ss]))],
    )
