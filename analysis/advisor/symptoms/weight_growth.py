"""``weight_growth``: an Adam-family LR so large against the weights' scale that the weight
matrices grow many times over early in the run.

Adam moves every element by about the LR per step, whatever its gradient. A GPT initialised at
std 0.02 and trained at lr 0.1 moves each weight by five times its own scale per step: the
matrices blow up 20x within the warm-up, the residual stream saturates the layer norms, and the
loss sits at the unigram level while the LR is high, improving only as a cosine decay brings
it down. Nothing else looks wrong: no NaN, no rise, no oscillation ("no problems found").
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_LR

from ...findings import Evidence, Finding
from ..causes import HUGE_STEP, lr_scale_phrase
from ..series import finite_prefix, fmt
from ..spec import SymptomSpec
from .lost_updates import ADAM_LIKE

GROWTH = 5.0          # median over the weight matrices of (largest norm in the early run / first norm)
EARLY = 0.4           # the early run: its first 40 % of records
LR_OVER_RMS = 0.5     # peak LR / median initial weight RMS: a step of half a weight's scale (healthy: <= 0.05)
NOTE_GROWTH = 2.5     # a note below the warning: nanoGPT at 10x its LR (1e-2): 3.4x at 0.45-0.5x,
# HUGE_STEP (causes): a warning from NOTE_GROWTH at steps of 3/4 of a weight's scale: a tiny GPT at 30x its LR
# (0.976x, 4.4x) stalled at 3.9 against 1.77 and read "no problems found" (trial 15)
NOTE_LR_OVER_RMS = 0.25   # 0.1 nat worse; healthy runs <= 1.5x at <= 0.055x
MIN_RMS = 1e-6        # matrices initialised at ~0 (LoRA's B, a zeroed head) have no scale to grow from
MIN_RECORDS = 5
TRAINED_WELL = 0.2    # a validation loss ending below 20 % of the untrained one, still falling: a note


def detect(sig, ctx):
    w = sig.layer.get("weight_norm")
    if w is None or len(w) < MIN_RECORDS or ctx.optimizer not in ADAM_LIKE or ctx.lr_values is None \
            or not len(ctx.lr_values):
        return None
    shapes = {p.name: p.shape for p in sig.params}
    cols = [i for i, n in enumerate(w.layers) if len(shapes.get(n, ())) >= 2 and ctx.param_numel.get(n)]
    if ctx.frozen_params:
        cols = [i for i in cols if w.layers[i] not in ctx.frozen_params]
    if not cols:
        return None
    stop = max(2, int(np.ceil(EARLY * len(w))))
    early = np.asarray(w.read(0, stop), dtype=np.float64)[:, cols]
    first = early[0]
    rms = first / np.sqrt([ctx.param_numel[w.layers[i]] for i in cols])
    keep = np.isfinite(first) & (rms > MIN_RMS)
    if not keep.any():
        return None
    # matrices initialised near 0 (LoRA's B, learned positions from zeros: first recorded after a
    # step or two) grow from nothing by any factor: only those near the usual scale are judged
    keep &= rms > 0.25 * float(np.median(rms[keep]))
    if not keep.any():
        return None
    growth = np.nanmax(np.where(np.isfinite(early), early, np.nan), axis=0)[keep] / first[keep]
    names = [w.layers[i] for i, k in zip(cols, keep) if k]
    median_growth = float(np.median(growth))
    peak_lr = float(np.max(ctx.lr_values))
    lr_over_rms = peak_lr / float(np.median(rms[keep]))
    if median_growth < NOTE_GROWTH or lr_over_rms < NOTE_LR_OVER_RMS:
        return None
    severity = "warning" if (median_growth >= GROWTH and lr_over_rms >= LR_OVER_RMS) \
        or (median_growth >= NOTE_GROWTH and lr_over_rms >= HUGE_STEP) else "info"
    worst = int(np.argmax(growth))
    steps = w.steps
    trained = _trained_far_and_still_falling(sig, ctx)
    if trained is not None:
        severity = "info"    # the grown weights hurt nothing the run can show: the best run of an LR sweep
    f = Finding(
        symptom="weight_growth", severity=severity, first_step=int(steps[0]), last_step=int(steps[stop - 1]),
        title=f"the weight matrices grew {fmt(median_growth)}x (median) in the first {EARLY:.0%} of the run: "
              + lr_scale_phrase(ctx, peak_lr, lr_over_rms),
        layers=[names[i] for i in np.argsort(-growth)[:8]],
        evidence=[
            Evidence(series="weight_norm", layer=names[worst], threshold=GROWTH,
                     steps=[int(steps[0]), int(steps[stop - 1])], values=[round(median_growth, 3)],
                     text=f"median over {len(names)} weight matrices of their largest norm in the first "
                          f"{EARLY:.0%} of the records over their first: {fmt(median_growth)}x (threshold "
                          f"{GROWTH:g}x, a note from {NOTE_GROWTH:g}x; healthy runs <= ~2.6x); {ctx.label(names[worst])} grew "
                          f"{fmt(float(growth[worst]))}x"),
            Evidence(series=SYS_LR, threshold=LR_OVER_RMS, values=[peak_lr],
                     text=f"{ctx.optimizer} moves each element by about the LR per step: peak LR {peak_lr:.3g} "
                          f"against a median initial weight RMS of {float(np.median(rms[keep])):.3g} "
                          f"({fmt(lr_over_rms)}x; threshold {LR_OVER_RMS:g}x, a note from {NOTE_LR_OVER_RMS:g}x, usual <= 0.05x)"),
        ],
        facts={"median_growth": round(median_growth, 3), "lr_over_rms": round(lr_over_rms, 3)},
    )
    if trained is not None:
        name, end, untrained = trained
        f.facts["trained_well"] = True
        f.evidence.append(Evidence(
            series=name, threshold=TRAINED_WELL, values=[round(end, 6), round(untrained, 6)],
            text=f"{name} ended at {fmt(end)}, {end / untrained:.0%} of the untrained model's {fmt(untrained)}, and was "
                 f"still at its lowest: a note, as the run trained well (a smaller LR may still do as well)"))
    return f


def settle(f, ctx):
    """A run that trained well is a note only while nothing else warns: 100 % dead units in a GPT at
    Adam 0.1 (the scenario suite's transformer_adam_lr_tenth) are the grown weights' harm, even at
    a validation loss 3 % of the untrained one."""
    if f.facts.get("trained_well") and ctx.another_warns(f):
        f.severity = "warning"
        f.facts["trained_well"] = False
        f.evidence = [e for e in f.evidence if e.threshold != TRAINED_WELL]
    return True


def _trained_far_and_still_falling(sig, ctx):
    """(loss name, end level, untrained loss) when the validation loss ends at <= TRAINED_WELL of
    the untrained model's loss, below its level at mid-run and at its lowest (within 5 %: not
    overfitting): the run generalises and still improves; else None. An HF Trainer sweep's AdamW 5e-2
    (warm-up, cosine, clip) grew its matrices 9x and reached eval loss 0.30 against 2.05 at 5e-4:
    'reduce the LR 10x' was a warning on the best run (trial 17, F5)."""
    if sig.train_loss is None:
        return None
    first = np.asarray(sig.train_loss[2], dtype=np.float64)[:1]
    if not first.size or not np.isfinite(first[0]) or first[0] <= 0:
        return None
    untrained = ctx.untrained_loss(float(first[0]))
    if sig.val_loss is None:      # a training loss alone may be memorised: a tiny LM at 30x its LR stays a warning
        return None
    name, steps, values = sig.val_loss
    _, v = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if v.size < 3 or v.size < len(values):      # a NaN/Inf on the way: not a run that trained well
        return None
    end = float(v[-1])
    if end > TRAINED_WELL * untrained or end >= float(v[len(v) // 2]) or end > 1.05 * float(np.min(v)):
        return None
    return name, end, untrained


SPEC = SymptomSpec(
    id="weight_growth",
    looks_at="per-parameter `weight_norm` of weight matrices, `sys/lr`, the optimizer's type",
    fires_when=f"an Adam-family optimizer whose peak LR is >= {LR_OVER_RMS:g}x the median initial RMS of the weight "
               f"matrices (a step of half a weight's scale; healthy runs <= 0.05x), and the matrices' largest norm in "
               f"the first {EARLY:.0%} of the records is >= {GROWTH:g}x their first (median over matrices initialised "
               f"above {MIN_RMS:g}; healthy runs <= ~2.6x) (warning); a note (info) from {NOTE_LR_OVER_RMS:g}x and "
               f"{NOTE_GROWTH:g}x (nanoGPT at 10x its LR: 0.45x, 3.4x), and when the validation loss ends <= "
               f"{TRAINED_WELL:.0%} of the untrained loss, at its lowest and below its mid-run level, with no other warning",
    detect=detect,
    priors={"lr_too_high": 0.9},
    word="weight growth",
    settle=settle,
)
