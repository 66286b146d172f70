"""Rule for non-finite values: the first step and the first layer where NaN/Inf appeared."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_NONFINITE_GRADS

from ..findings import Evidence, Finding
from .series import first_nonfinite, fmt, rounded
from .tables import Table, as_table


def _first_bad_row(table: Table, stat: str):
    """(first bad row, its bad columns) from the table's chunked summary, or (None, [])."""
    s = table.summary
    if stat == "grad_nonfinite":
        first = s.first_positive                     # a count > 0 (NaN counts: no record)
    else:                                            # Inf, or NaN in a column that is not NaN throughout
        nan = np.where(s.all_nan, -1, s.first_nan)  # (an all-NaN column is "never had a gradient")
        first = np.where((s.first_inf >= 0) & ((nan < 0) | (s.first_inf < nan)), s.first_inf, nan)
    seen = first[first >= 0]
    if seen.size == 0:
        return None, []
    r = int(seen.min())
    return r, np.flatnonzero(first == r).tolist()


def _first_measured_bad_row(table: Table, measured: Table):
    """Like :func:`_first_bad_row` for an activation statistic, counting only cells whose
    ``measured`` statistic (act_frac_nonpos, finite for any output, NaN or not) is finite: the
    recorder writes NaN for a leaf that did not run in a captured forward (an auxiliary head
    called every other step, an expert no token was routed to), not a non-finite output."""
    for (a, block), (_, seen) in zip(table.chunks(), measured.chunks()):
        n = min(len(block), len(seen))
        bad = ~np.isfinite(block[:n]) & np.isfinite(seen[:n])
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            r = int(rows[0])
            return a + r, np.flatnonzero(bad[r]).tolist()
    return None, []


def detect_nan_inf(scalars: dict, layer_tables: dict, *, label=str, measured=None) -> Finding | None:
    """First non-finite value anywhere: loss curves, gradients, weights, activations.

    ``scalars``: {name: (steps, values)} of scalar series to check (losses, sys/grad_norm,
    sys/nonfinite_grads, sys/input_*). ``layer_tables``: {stat name: Table or (steps, [R x L],
    layers)}, read in row chunks, for grad_nonfinite (count > 0 is non-finite), weight_norm and act_* (a non-finite
    value is). A gradient the recorder could not see (NaN norm with 0 non-finite entries)
    is not counted: that is a parameter without a gradient; nor is an activation the recorder
    did not measure (``measured``: the act_frac_nonpos Table, NaN where a leaf did not run). ``label`` turns a layer name
    into the words used in titles and evidence ("0.weight (Linear)").
    """
    hits = []   # (step, order, evidence, layers)
    for name, (steps, values) in scalars.items():
        steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
        if name == SYS_NONFINITE_GRADS:
            bad = np.flatnonzero(values > 0)
            i = int(bad[0]) if bad.size else None
        else:
            i = first_nonfinite(values)
        if i is None:
            continue
        before = values[max(0, i - 5): i]
        hits.append((int(steps[i]), 0, Evidence(
            series=name, text=(f"{name} is {values[i]} at step {int(steps[i])}" if name != SYS_NONFINITE_GRADS else
                               f"{values[i]:.0f} non-finite gradient entries at step {int(steps[i])}")  # inf-safe
            + (f" (the last {len(before)} recorded before it, steps {_span(steps[max(0, i - 5): i])}: "
               f"{', '.join(fmt(v) for v in before)})" if before.size else ""),
            steps=[int(s) for s in steps[max(0, i - 5): i + 1]], values=rounded(values[max(0, i - 5): i + 1])), []))
    for stat, table in layer_tables.items():
        if isinstance(table, tuple):
            steps, matrix, layers = table
            if matrix is None:
                continue
            table = as_table(matrix, steps, layers)
        if len(table) == 0:
            continue
        r, cols = _first_bad_row(table, stat)
        if r is not None and stat.startswith("act_") and measured is not None and len(measured) == len(table) \
                and list(measured.layers) == list(table.layers):
            r, cols = _first_measured_bad_row(table, measured)
        if r is None:
            continue
        step = int(table.steps[r])
        names = [table.layers[c] for c in cols]
        hits.append((step, 1, Evidence(
            series=stat, layer=names[0],
            text=f"{stat} non-finite at step {step} in {len(names)} layer(s), first in model order: {label(names[0])}",
            steps=[step], values=rounded(table.read(r, r + 1)[0, cols[:8]])), names))
    if not hits:
        return None
    hits.sort(key=lambda h: (h[0], h[1]))
    first_step = hits[0][0]
    layer_hits = [h for h in hits if h[3]]
    layers = []
    if layer_hits:
        earliest = min(h[0] for h in layer_hits)
        for h in layer_hits:
            if h[0] == earliest:
                layers += [n for n in h[3] if n not in layers]
    where = f", first in {label(layers[0])}" if layers else ""
    return Finding(
        symptom="nan_inf", severity="error",
        title=f"non-finite values from step {first_step} in {hits[0][2].series}{where}",
        first_step=first_step, last_step=max(h[0] for h in hits), layers=layers,
        evidence=[h[2] for h in hits],
    )


def _span(steps) -> str:
    first, last = int(steps[0]), int(steps[-1])
    return f"{first}" if first == last else f"{first}–{last}"
