"""Rules over per-module activation statistics: dead ReLUs, saturated sigmoid/tanh units.

Inputs are [records x modules] matrices (training-mode forwards, every ``stats_every``
steps) and the modules' class names. Only modules whose class says what the statistic
means are judged: a Linear layer's outputs being <= 0 for a whole batch is normal for a
logit, and |x| > 5 is normal for a late-training logit.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder import format as fmt

from ..findings import Evidence, Finding
from ..labels import LayerLabels
from .series import nanmedian, rounded
from .tables import as_table

RELU_TYPES = {"ReLU", "ReLU6", "RReLU"}           # units can die (LeakyReLU/GELU/ELU cannot)
BOUNDED_TYPES = set(fmt.BOUNDED_ACTIVATIONS)


def relu_columns(types) -> list[int]:
    """Modules whose units can die (the dead-units rule's columns)."""
    return [j for j, t in enumerate(types) if t in RELU_TYPES]


def bounded_columns(types) -> list[int]:
    """Modules whose outputs can saturate (the saturation rule's columns)."""
    return [j for j, t in enumerate(types) if t in BOUNDED_TYPES]


def _late(values, tail: float, steps=None):
    """Rows of the last ``tail`` fraction of the run (at least 3): by step where ``steps`` are
    given. The recorder takes activation records every step for the first 100 steps, then every
    50: by record, the "last half" of a 574-step run was steps 46-550, mostly 46-100, and an
    output ReLU that died later (a DeepDiagnosis case) read as alive."""
    v = np.asarray(values, dtype=np.float64)      # a few ReLU/sigmoid columns, not the whole table
    k = max(3, int(round(v.shape[0] * tail)))
    if steps is not None and len(steps) == v.shape[0] and len(steps):
        s = np.asarray(steps, dtype=np.float64)
        k = max(3, int(np.sum(s >= s[0] + (1.0 - tail) * (s[-1] - s[0]))))
    return v[-k:]


def detect_dead_units(steps, dead_frac, frac_nonpos, modules, types, *, dead=0.5, nonpos=0.7, tail=0.5,
                      min_records=4, label=str, dropped=None, strict=(), strict_dead=0.9) -> Finding | None:
    """ReLU layers where most units output 0 for every sample of a batch.

    Fires when, over the last ``tail`` of the run (by step), the median fraction of dead units
    (<= 0 for the whole batch) is >= ``dead``, or the fraction of outputs <= 0 is >= ``nonpos``
    (DeepDiagnosis, ICSE'22: >= 70 % of ReLU outputs <= 0) together with >= ``dead``/2 dead units.
    Healthy ReLU nets on the suite: ~50 % outputs <= 0, < 10 % dead units.
    ``dropped``: {column: p} of ReLUs fed by a Dropout of rate p, whose zeros are not the ReLU's:
    their fraction <= 0 is judged less them, (z - p) / (1 - p). ``strict``: columns judged by
    their dead units alone, at ``strict_dead`` (ReLUs behind a Dropout of unknown or high rate:
    a batch of B leaves p**B of the units zeroed by the Dropout alone).
    """
    steps = np.asarray(steps)
    if len(steps) < min_records:
        return None
    cols = relu_columns(types)
    if not cols:
        return None
    # Only the ReLU columns are read (chunk by chunk), as float32.
    all_d = as_table(dead_frac, steps, modules).columns(cols)
    d = _late(all_d, tail, steps)
    z = (_late(as_table(frac_nonpos, steps, modules).columns(cols), tail, steps) if frac_nonpos is not None
         else np.full_like(d, np.nan))
    for i, j in enumerate(cols):
        p = (dropped or {}).get(j)
        if p is not None and p < 1:
            z[:, i] = np.clip((z[:, i] - p) / (1 - p), 0.0, 1.0)
    dm, zm = nanmedian(d, axis=0), nanmedian(z, axis=0)     # all-NaN columns (no frac_nonpos) are expected
    hit = [i for i in range(len(cols)) if (dm[i] >= strict_dead if cols[i] in strict else
                                           dm[i] >= dead or (zm[i] >= nonpos and dm[i] >= dead / 2))]
    if not hit:
        return None
    hit.sort(key=lambda i: -dm[i])   # the title names the worst layer with its own figure
    names = [modules[cols[i]] for i in hit]
    full = all_d[:, hit].astype(np.float64)
    with np.errstate(all="ignore"):
        crossed = np.flatnonzero(np.nanmax(full, axis=1) >= dead)
    first = int(steps[crossed[0]]) if crossed.size else int(steps[0])
    from_start = bool(np.nanmax(full[0]) >= dead) if np.isfinite(full[0]).any() else False
    worst = max(dm[i] for i in hit)
    return Finding(
        symptom="dead_units", severity="error" if worst >= 0.9 else "warning",
        title=f"dead ReLUs: {worst:.0%} of the units of {label(names[0])} never fire"
              + (f" (and {len(names) - 1} more layer(s))" if len(names) > 1 else ""),
        first_step=first, last_step=int(steps[-1]), layers=names,
        evidence=[Evidence(
            series="act_dead_frac", layer=modules[cols[i]], threshold=dead,
            text=_dead_text(label(modules[cols[i]]), dm[i], zm[i], dead, nonpos, tail, (dropped or {}).get(cols[i]),
                            strict_dead if cols[i] in strict else None)
                 + (" - already at the first record" if from_start else ""),
            steps=[int(steps[0]), first, int(steps[-1])],
            values=rounded([full[0, k], dm[i]])) for k, i in enumerate(hit)],
        facts={"dead_from_start": from_start, "worst_dead": round(float(worst), 4)},
    )


def _dead_text(name: str, dead_med: float, nonpos_med: float, dead: float, nonpos: float, tail: float,
               dropped: float | None = None, strict: float | None = None) -> str:
    if strict is not None:   # behind a Dropout: whole-batch death alone, at a higher threshold
        return (f"{name}: {dead_med:.0%} of units are <= 0 for the whole batch (median of the last {tail:.0%} of "
                f"records; it follows a Dropout, whose zeros leave units empty in small batches: threshold "
                f"{strict:.0%} dead units)")
    # The outputs-<=-0 figure and criterion only where they were read (not behind F.relu).
    outputs = f", {nonpos_med:.0%} of outputs <= 0" if np.isfinite(nonpos_med) else ""
    if outputs and dropped is not None:
        outputs += f" besides the {dropped:.0%} its Dropout zeroes"
    rule = f"{dead:.0%} dead units" + (f", or {nonpos:.0%} outputs <= 0 per DeepDiagnosis" if nonpos <= 1 else "")
    return (f"{name}: {dead_med:.0%} of units are <= 0 for the whole batch{outputs} (median of the last "
            f"{tail:.0%} of the steps; threshold{'s' if nonpos <= 1 else ''} {rule})")


def dead_from_start(finding: Finding) -> bool:
    return bool(finding.facts.get("dead_from_start"))


def detect_saturation(steps, frac_saturated, modules, types, *, saturated=0.5, tail=0.5, min_records=4,
                      label=None) -> Finding | None:
    """Sigmoid/tanh-family layers whose outputs sit at their bounds (no gradient flows).

    The recorder counts outputs within 1 % of the output range from a bound, which for a
    sigmoid/tanh is a pre-activation beyond about +-5: DeepDiagnosis (ICSE'22) calls a layer
    saturated when > 50 % of pre-activations are beyond +-5.
    """
    steps = np.asarray(steps)
    if len(steps) < min_records:
        return None
    cols = bounded_columns(types)
    if not cols:
        return None
    if label is None:       # without a labeller the evidence still names the activation type
        label = LayerLabels.from_types(modules, types)
    all_s = as_table(frac_saturated, steps, modules).columns(cols)
    late = _late(all_s, tail, steps)
    med = nanmedian(late, axis=0)
    hit = [i for i in range(len(cols)) if med[i] > saturated]
    if not hit:
        return None
    names = [modules[cols[i]] for i in hit]
    full = all_s[:, hit].astype(np.float64)
    with np.errstate(all="ignore"):
        crossed = np.flatnonzero(np.nanmax(full, axis=1) > saturated)
    first = int(steps[crossed[0]]) if crossed.size else int(steps[0])
    worst = max(med[i] for i in hit)
    from_start = bool(np.isfinite(full[0]).any() and np.nanmax(full[0]) > saturated)
    return Finding(
        symptom="saturated_activations", severity="warning",
        title=f"saturated activations: {worst:.0%} of the outputs of {label(names[0])} sit at their bounds"
              + (f" (and {len(names) - 1} more layer(s))" if len(names) > 1 else ""),
        first_step=first, last_step=int(steps[-1]), layers=names,
        evidence=[Evidence(
            series="act_frac_saturated", layer=modules[cols[i]], threshold=saturated,
            text=(f"{label(modules[cols[i]])}: {med[i]:.0%} of outputs within 1 % of a bound "
                  f"(median of the last {tail:.0%} of the steps; threshold {saturated:.0%}, DeepDiagnosis)"
                  + (" - already at the first record" if from_start else "")),
            steps=[int(steps[0]), int(steps[-1])], values=rounded([full[0, k], med[i]])) for k, i in enumerate(hit)],
        facts={"saturated_from_start": from_start},
    )
