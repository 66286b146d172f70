"""``nan_inf``: the first NaN/Inf anywhere, and whether growth (its precursor) or a first forward led to it."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import (SYS_AMP_SKIPPED, SYS_GRAD_NORM, SYS_INPUT_MEAN, SYS_INPUT_STD, SYS_LOSS_SCALE,
                                        SYS_NONFINITE_GRADS)

from .. import nan_rules, rank_rules
from ..series import first_nonfinite, rounded
from ..causes import inputs_unscaled, lr_from_update_ratio
from ...findings import Evidence, Fix
from ..spec import SymptomSpec

LAYER_STATS = ("grad_nonfinite", "weight_norm", "act_mean", "act_absmax")


def detect(sig, ctx):
    scalars = {}
    for role in (sig.train_loss, sig.val_loss):
        if role is not None:
            scalars[role[0]] = (role[1], role[2])
    for name in (SYS_GRAD_NORM, SYS_NONFINITE_GRADS, SYS_INPUT_MEAN, SYS_INPUT_STD):
        if name in sig.scalars:
            scalars[sig.stand_ins.get(name, name)] = sig.scalars[name]   # evidence names what the run logged
    f = nan_rules.detect_nan_inf(scalars, {k: sig.layer[k] for k in LAYER_STATS if k in sig.layer}, label=ctx.label,
                                 measured=sig.layer.get("act_frac_nonpos"))
    if f is None:
        return None
    ctx.nan_step = f.first_step
    f.facts["first_record"] = _at_first_record(sig, f.first_step)
    f.facts["input_nonfinite"] = any(e.series in (SYS_INPUT_MEAN, SYS_INPUT_STD) for e in f.evidence)
    f.facts["calm_before"] = calm_before(sig, f.first_step)
    if f.facts["input_nonfinite"] and _first_nonfinite_input(sig) == f.first_step:
        f.title = (f"a non-finite input batch at step {f.first_step}: the data fed to the model held NaN/Inf"
                   + (f" ({len(f.layers)} layer(s) and the loss non-finite from there)" if f.layers else ""))
    elif not f.facts["input_nonfinite"] and (hit := _rank_input_first(sig)) is not None:
        # DDP: a NaN batch on another rank reaches this rank's weights through the all-reduce;
        # the rank that went first decides the cause, as one process's own input would
        rank, step, evidence = hit
        f.facts["input_nonfinite"] = True
        f.facts["input_rank"] = rank
        f.evidence.insert(0, evidence)
        f.title = (f"a non-finite input batch on rank {rank} at step {step}: the data that rank fed to the model "
                   f"held NaN/Inf (this rank non-finite from step {f.first_step}, through the gradient all-reduce)")
    end = _nonfinite_to_the_end(sig, f.first_step)
    if end is not None:      # "steps 150-160" read as "it recovered" for a loss NaN to step 299
        f.last_step = max(f.last_step or end, end)
        f.facts["to_the_end"] = True
        f.title += ", and to the end of the run"
    amp = amp_skips(sig)
    if amp is not None and amp["skipped"] >= AMP_ALL * amp["steps"]:
        f.facts["amp_all_skipped"] = amp
        f.evidence.insert(0, Evidence(
            series=SYS_AMP_SKIPPED, values=[float(amp["skipped"]), float(amp["steps"])], threshold=AMP_ALL,
            text=(f"the GradScaler skipped {amp['skipped']} of {amp['steps']} optimizer steps (inf/NaN gradients) and "
                  f"the loss scale fell from {amp['first_scale']:.3g} to {amp['last_scale']:.3g}: the model never "
                  "trained" + ("; the loss was already non-finite in the forward, before any scaling, so a "
                               "scaler cannot help" if f.facts["first_record"] else ""))))
        f.title += f" (the GradScaler skipped {amp['skipped']} of {amp['steps']} optimizer steps)"
    if _float32_overflow(sig, f.first_step):
        f.facts["float32_overflow"] = True
        f.title = (f"values beyond float32's range (> 3.4e38) from step {f.first_step}: the float64 model's "
                   "gradients/weights blew up (finite in the model, recorded as inf)")
    return f


AMP_ALL = 0.9       # share of the optimizer steps a GradScaler skipped: nearly all, the model never trained
AMP_MIN_STEPS = 5


def amp_skips(sig) -> dict | None:
    """{"skipped", "steps", "first_scale", "last_scale"} of a run whose GradScaler stepped the watched
    optimizer (``sys/loss_scale`` at each step, ``sys/amp_skipped_step`` at the skipped ones), or None.
    An fp16 forward that overflows at every step had all 400 steps skipped and the scale halved to 0;
    the finding said nothing of it and offered "use a loss scaler" (trial 18 U3)."""
    scale, skipped = sig.scalars.get(SYS_LOSS_SCALE), sig.scalars.get(SYS_AMP_SKIPPED)
    if scale is None or not len(scale[0]):
        return None
    steps = len(np.unique(np.asarray(scale[0])))
    n = 0 if skipped is None else int(np.sum(np.asarray(skipped[1], np.float64) > 0))
    if steps < AMP_MIN_STEPS:
        return None
    v = np.asarray(scale[1], np.float64)
    return {"skipped": n, "steps": steps, "first_scale": float(v[0]), "last_scale": float(v[-1])}


def _first_nonfinite_input(sig):
    steps = []
    for name in (SYS_INPUT_MEAN, SYS_INPUT_STD):
        series = sig.scalars.get(name)
        i = first_nonfinite(series[1]) if series is not None else None
        if i is not None:
            steps.append(int(np.asarray(series[0])[i]))
    return min(steps) if steps else None


def _rank_input_first(sig):
    """(rank, step, Evidence) when one rank of a distributed run went non-finite before the
    others and its recorded input statistics were non-finite from that step (its first input
    record at or after it: the recorder samples inputs), else None."""
    if sig.ranks is None or not sig.ranks.inputs:
        return None
    hit = rank_rules.first_nonfinite_rank(sig.ranks.nonfinite)
    if hit is None:
        return None
    rank, step = hit
    for name, (steps, values) in sorted(sig.ranks.inputs.get(rank, {}).items()):
        steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
        at = np.flatnonzero(steps >= step)
        if at.size and not np.isfinite(values[at[0]]):
            return rank, step, Evidence(
                series=name, steps=[int(steps[at[0]])], values=rounded([values[at[0]]]),
                text=f"rank {rank}: {name} is {values[at[0]]:g} at step {int(steps[at[0]])}, the step that rank "
                     "went non-finite: its batch held NaN/Inf")
    return None


def _nonfinite_to_the_end(sig, step):
    """The training loss's last step when it is non-finite at every point from ``step`` on
    (the run never recovered), else None."""
    role = sig.train_loss
    if role is None:
        return None
    s, v = np.asarray(role[1]), np.asarray(role[2], dtype=np.float64)
    after = s >= step
    if after.sum() < 2 or np.any(np.isfinite(v[after])):
        return None
    return int(s[after][-1])


def _float32_overflow(sig, step) -> bool:
    """A float64 model whose norms passed 3.4e38: the recorder's float32 records read inf while
    the model is finite (time_sequence_prediction at LR 8: 1.2e54; its loss, stored as float64,
    1.4e73). Then the losses are finite, no gradient entry was non-finite, and the norm is +inf."""
    dtypes = (sig.meta.get("model") or {}).get("param_dtypes")
    if not isinstance(dtypes, dict) or "float64" not in str(dtypes):   # {"float64": [0, 1, ...]}
        return False
    for role in (sig.train_loss, sig.val_loss):
        if role is not None:
            v = np.asarray(role[2], dtype=np.float64)[np.asarray(role[1]) <= step]
            if v.size and not np.all(np.isfinite(v)):
                return False
    counts = sig.scalars.get(SYS_NONFINITE_GRADS)
    if counts is not None and np.any(np.asarray(counts[1])[np.asarray(counts[0]) <= step] > 0):
        return False
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is None:
        return False
    at = np.asarray(total[1], dtype=np.float64)[np.asarray(total[0]) == step]
    return bool(at.size and np.all(np.isposinf(at)))


def _at_first_record(sig, step) -> bool:
    """The very first forward/backward was already non-finite: no optimizer update had happened."""
    starts = [int(v[1][0]) for v in (sig.train_loss, sig.val_loss) if v is not None and len(v[1])]
    starts += [int(s[0]) for s, _ in sig.scalars.values() if len(s)]
    return bool(starts) and step <= min(starts)


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    inputs_unscaled(s, ctx, 0.75)
    if f.facts.get("float32_overflow"):
        s.damp("numerical_instability", 0.3)     # nothing overflowed in the model: it blew up
    if f.facts.get("input_rank") is not None:
        s.boost("rank_local_data", 0.95, f"rank {f.facts['input_rank']}'s input went non-finite first: a batch of "
                                         "its data shard holds NaN/Inf")
    if f.facts.get("input_nonfinite"):
        s.boost("numerical_instability", 0.9, "the model's input itself was non-finite: the data holds NaN/Inf")
        s.damp("lr_too_high", 0.2)
    elif f.facts.get("first_record"):
        s.boost("numerical_instability", 0.9, "already non-finite at the first record, before any update: an "
                                              "overflow in the forward pass (e.g. stacked exp), not the LR")
        s.damp("lr_too_high", 0.2)
        s.damp("bad_init", 0.5)
    elif f.precursor is not None:
        growth = f.facts
        if growth.get("lr_rose"):
            first, at, step = growth["lr_rose"]
            s.boost("lr_too_high", 0.9, f"the growth began after the LR rose from {first:.3g} to {at:.3g} "
                                        f"(from step {step}: a warm-up or schedule)")
        elif growth.get("growth_from_start") and ctx.lr_constant and not ctx.ratio_high:
            s.boost("bad_init", 0.85, "the growth started at the first steps with a constant LR: the initial "
                                      "weights amplify the signal")
            s.damp("lr_too_high", 0.5)
        elif growth.get("growth_from_start"):   # from the first steps, but with large updates
            s.boost("lr_too_high", 0.85, f"{f.precursor.summary} before it became non-finite"
                    + (f"; the update/weight ratio was high ({ctx.update_ratio:.2g})" if ctx.update_ratio is not None
                       else ""))
        else:
            s.boost("lr_too_high", 0.85, f"{f.precursor.summary} before it became non-finite, after a calm start "
                                         "with the same LR")
    elif f.facts.get("calm_before"):
        s.boost("numerical_instability", 0.7, "the values were unremarkable right before: a sudden overflow "
                                              "(log(0), division, fp16) rather than a slow divergence")
    amp = f.facts.get("amp_all_skipped")
    if amp and f.facts.get("first_record"):
        s.boost("numerical_instability", 0.95, f"the GradScaler skipped {amp['skipped']} of {amp['steps']} optimizer "
                                               f"steps and the loss scale fell to {amp['last_scale']:.3g}: the float16 "
                                               "forward overflows at every step, before any scaling")
        s.damp("lr_too_high", 0.2)      # no update was ever made
        s.damp("bad_init", 0.5)


def calm_before(sig, step) -> bool:
    """The global gradient norm was unremarkable right before the first non-finite step."""
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is None:
        return False
    s, v = total
    v = v[(s < step) & np.isfinite(v)]
    return bool(v.size >= 3 and np.max(v[-3:]) <= 10 * np.median(v[: max(3, v.size // 10)]))


AMP_FIX = Fix("amp_overflow", "the forward itself overflows in float16 (max 65504), which no loss scaler can "
                              "fix: autocast to bfloat16 (torch.autocast(..., dtype=torch.bfloat16)), run the "
                              "overflowing op in float32 (autocast(enabled=False) around it), or normalise the inputs")


def fixes(f, ctx):
    if f.facts.get("amp_all_skipped") and f.facts.get("first_record"):
        return [AMP_FIX]
    if f.facts.get("input_rank") is not None:
        return [Fix("check_data_nan", f"check the data rank {f.facts['input_rank']} read for NaN/Inf: its input "
                                      "was non-finite (DistributedSampler: sample indices rank, rank + world_size, ...)")]
    if f.facts.get("input_nonfinite"):
        return [Fix("check_data_nan", "check the data for NaN/Inf: the model's input was non-finite")]
    return []


SPEC = SymptomSpec(
    id="nan_inf",
    looks_at="losses, `sys/grad_norm`, `sys/nonfinite_grads`, `sys/input_*`, per-layer `grad_nonfinite`, "
             "`weight_norm`, `act_*`; `sys/amp_skipped_step`, `sys/loss_scale` (a GradScaler that skipped >= 90 % of "
             ">= 5 steps is named, and a forward non-finite from the first record gets bf16/fp32 advice, not a scaler)",
    fires_when="first NaN/Inf anywhere; reports the first step and the first layer in model order, and the growth "
               "that led to it (its precursor finding: exploding gradients or divergence)",
    detect=detect,
    priors={"lr_too_high": 0.5, "numerical_instability": 0.4, "input_scaling": 0.2, "bad_init": 0.1},
    word="NaN",
    adjust=adjust,
    fixes=fixes,
)
