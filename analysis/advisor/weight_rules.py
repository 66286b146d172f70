"""Rules over weights: symmetric (identical) units, and the update/weight ratio.

The recorder keeps 32x32 block-averaged snapshots of every weight matrix (rows = output
units, averaged in blocks). If all units of a layer are identical (zero or constant
init), every row of the snapshot is identical too; random init makes them differ by
orders of magnitude more than float16 rounding.
"""
from __future__ import annotations

import numpy as np

from ..findings import Evidence, Finding
from .series import fmt, nanmedian, rounded
from .tables import as_table


def identical_rows(block, tol: float = 1e-3) -> bool:
    """True when every row of ``block`` equals the first within ``tol`` x the block's scale."""
    b = np.asarray(block, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] < 2 or not np.all(np.isfinite(b)):
        return False
    scale = float(np.max(np.abs(b)))
    spread = float(np.max(np.ptp(b, axis=0)))
    return spread <= tol * scale or scale == 0.0


def _grew_after(name, step, weight_steps, weight_norm, param_layers) -> bool:
    """Is ``name``'s weight norm above 0 in a weight record after ``step``?"""
    if weight_norm is None or param_layers is None or name not in param_layers or not len(weight_steps):
        return False
    later = np.flatnonzero(np.asarray(weight_steps) > step)
    if not later.size:
        return False
    table = as_table(weight_norm, weight_steps, param_layers)
    last = int(later[-1])
    value = float(np.asarray(table.read(last, last + 1), dtype=np.float64)[0, list(param_layers).index(name)])
    return bool(np.isfinite(value) and value > 0)


def detect_symmetric(snap_steps, data, shapes, layers, *, weight_steps=None, weight_norm=None, param_layers=None,
                     param_numel=None, tol=1e-3, label=str) -> Finding | None:
    """Layers whose units are all identical: the symmetry is never broken by training.

    From snapshots: every row of the last snapshot of a matrix is identical (within ``tol``,
    float16 precision is ~5e-4). Without snapshots: a weight norm of exactly 0 in every
    record (all-zero matrix); ``param_numel`` (element counts of ``param_layers``) leaves out
    weights with no elements, whose norm is 0 trivially. ``tol`` 1e-3: random init gives row
    spreads of ~1e-1 x scale.
    """
    hits, evidence, first_steps = [], [], []
    if data is not None and len(snap_steps):
        data = np.asarray(data)
        for s, name in enumerate(layers):
            rows, cols = (int(x) for x in shapes[s])
            if rows < 2:
                continue
            last = data[-1, s, :rows, :cols]
            if not identical_rows(last, tol):
                continue
            first = data[0, s, :rows, :cols]
            if not identical_rows(first, tol) and _collapsed(first, last):
                continue    # rows told apart at first, all ~0 now: shrunk (weight decay), not a symmetric init
            if not np.any(last) and _grew_after(name, int(snap_steps[-1]), weight_steps, weight_norm, param_layers):
                # All zero at the last snapshot, not zero in a later weight record: a zero init that
                # training left (LoRA's B, a zero-initialised last layer of a residual branch). The
                # gradient that moved it told its rows apart unless an upstream layer is symmetric too,
                # which is found on that layer. (A 200-step LoRA run has only its step-0 snapshot.)
                continue
            hits.append(name)
            first_steps.append(int(snap_steps[0]) if identical_rows(first, tol) else int(snap_steps[-1]))
            evidence.append(Evidence(
                series="snapshots", layer=name, threshold=tol,
                text=(f"{label(name)}: all {rows} rows of the block-averaged weight snapshot are identical at step "
                      f"{int(snap_steps[-1])} (spread <= {tol:g} x scale {fmt(float(np.max(np.abs(last))))})"
                      + (f", already at step {int(snap_steps[0])}" if identical_rows(first, tol) else "")),
                steps=[int(snap_steps[0]), int(snap_steps[-1])],
                values=rounded(last[: min(rows, 3), 0])))
    elif weight_norm is not None and param_layers is not None and len(weight_steps):
        all_zero = as_table(weight_norm, weight_steps, param_layers).summary.all_zero
        for j, name in enumerate(param_layers):
            empty = param_numel is not None and param_numel[j] == 0
            if name.endswith("weight") and all_zero[j] and not empty:
                hits.append(name)
                first_steps.append(int(weight_steps[0]))
                evidence.append(Evidence(series="weight_norm", layer=name, threshold=0.0,
                                         text=f"{label(name)}: weight norm is exactly 0 in every record (all-zero matrix)",
                                         steps=[int(weight_steps[0]), int(weight_steps[-1])], values=[0.0, 0.0]))
    if not hits:
        return None
    return Finding(
        symptom="symmetric_weights", severity="warning",
        title=f"symmetric weights: all units of {label(hits[0])} are identical"
              + (f" (and {len(hits) - 1} more layer(s))" if len(hits) > 1 else ""),
        first_step=min(first_steps),
        last_step=int(snap_steps[-1]) if data is not None and len(snap_steps) else int(weight_steps[-1]),
        layers=hits, evidence=evidence,
    )


COLLAPSED = 0.01   # a matrix whose largest entry fell below 1 % of its first one has collapsed to ~0


def _collapsed(first, last) -> bool:
    top = float(np.nanmax(np.abs(first))) if first.size else 0.0
    return top > 0 and float(np.nanmax(np.abs(last))) < COLLAPSED * top


def update_ratio_level(steps, update_ratio, layers, shapes, *, skip_first=1):
    """Typical update/weight ratio of the weight matrices: median over records and layers.

    cs231n (Karpathy): the ratio of an update's norm to the weight's norm should be
    around 1e-3; much larger means the LR is too high, much smaller too low.
    Returns (median ratio, {layer: median}) or (None, {}) without usable records.
    """
    if update_ratio is None or len(steps) <= skip_first:
        return None, {}
    table = as_table(update_ratio, steps, layers)
    cols = [i for i, s in enumerate(shapes) if len(s) >= 2] or list(range(table.shape[1]))
    u = table.columns(cols, start=skip_first).astype(np.float64)     # weight matrices only
    # Each record stands for the steps until the next one: dense early records (every step for the
    # first 100) must not outweigh the rest of the run.
    st = np.asarray(table.steps, dtype=np.float64)[skip_first:]
    gaps = np.diff(st, append=st[-1] + (st[-1] - st[-2] if len(st) > 1 else 1.0)) if len(st) else st
    per = {}
    for k, j in enumerate(cols):
        v = u[:, k]
        ok = np.isfinite(v) & (v > 0)
        if ok.any():
            per[layers[j]] = _weighted_median(v[ok], gaps[ok])
    if not per:
        return None, {}
    return float(np.median(list(per.values()))), per


def update_ratio_peak(steps, update_ratio, layers, shapes, *, skip_first=1):
    """The largest per-record median (over weight matrices) update/weight ratio: how large the
    updates were at their largest, e.g. before a too-high LR killed the units (after that the
    updates are ~0 and the run's median looks normal). None without usable records."""
    if update_ratio is None or len(steps) <= skip_first:
        return None
    table = as_table(update_ratio, steps, layers)
    cols = [i for i, s in enumerate(shapes) if len(s) >= 2] or list(range(table.shape[1]))
    u = table.columns(cols, start=skip_first).astype(np.float64)
    u[~np.isfinite(u) | (u <= 0)] = np.nan
    med = nanmedian(u, axis=1)
    med = med[np.isfinite(med)]
    return float(med.max()) if med.size else None


def _weighted_median(values, weights) -> float:
    """The weighted median; weights below 0 or not finite count 0 (steps that run backwards in a
    damaged file give negative gaps: the cumulative sum then fell and the search ran off the end,
    trial 18 A7); with no positive weight, the plain median."""
    values = np.asarray(values)
    weights = np.asarray(weights, dtype=np.float64)
    weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    order = np.argsort(values)
    w = np.cumsum(weights[order])
    if not len(w) or w[-1] <= 0:
        return float(np.median(values)) if len(values) else float("nan")
    i = min(int(np.searchsorted(w, 0.5 * w[-1])), len(w) - 1)
    return float(values[order][i])


def cumulative_change(steps, update_ratio, layers, shapes):
    """How far the most-updated weight matrix moved over the run, relative to its size: the sum of
    its update/weight ratios, each counted for the steps until the next record (the recorder
    samples every ``stats_every`` steps). 0.003 = the weights changed by 0.3 % in all; None
    without records. Rows after the first non-finite ratio are left out (the run is over there)."""
    table = as_table(update_ratio, steps, layers)
    cols = [i for i, s in enumerate(shapes) if len(s) >= 2] or list(range(table.shape[1]))
    steps = np.asarray(table.steps, dtype=np.float64)
    if len(steps) < 3:
        return None
    u = table.columns(cols).astype(np.float64)
    bad = ~np.isfinite(u).all(axis=1)
    stop = int(np.argmax(bad)) if bad.any() else len(steps)
    if stop < 3:
        return None
    u, steps = u[:stop], steps[:stop]
    gaps = np.diff(steps, append=steps[-1] + (steps[-1] - steps[-2]))
    return float(np.max(np.sum(np.clip(u, 0, None) * gaps[:, None], axis=0)))
