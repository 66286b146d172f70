"""Root-cause chains: what grew before a NaN, and linking the findings into a chain.

A NaN is the last symptom, rarely the first. When the gradient norm (or the loss) grew by
orders of magnitude in the steps before the first non-finite value, that growth is reported
as its own finding (``exploding_gradients`` or ``divergence``, with facts ``before_nan``,
``growth_from_start`` and ``lr_rose``), and the ``nan_inf`` finding names it as its
``precursor``: "the gradient norm grew 1e+15x over 20 steps from step 25, then became
non-finite at step 46". Where the growth began and what the LR did before it rank the cause.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..findings import Precursor
from .series import fmt

MIN_GROWTH = 10.0       # the series grew at least this much before the NaN: a chain, not a sudden overflow
BASE_FACTOR = 3.0       # a value within 3x of the early level counts as "not yet growing"


@dataclass(frozen=True)
class Growth:
    series: str
    what: str               # "gradient norm", "loss"
    onset_step: int         # last step still at the early level: the growth began after it
    peak_step: int          # last finite step before the NaN
    onset_value: float
    peak_value: float
    from_start: bool        # no calm period: growing from the first records

    @property
    def factor(self) -> float:
        return self.peak_value / self.onset_value if self.onset_value > 0 else float("inf")

    @property
    def summary(self) -> str:
        f = self.factor
        size = f"10^{np.log10(f):.0f}x" if np.isfinite(f) and f >= 1e4 else f"{fmt(f)}x"
        start = "from the first steps" if self.from_start else f"from step {self.onset_step}"
        return f"the {self.what} grew {size} over {self.peak_step - self.onset_step} steps {start}"


def growth_before(steps, values, stop_step: int, *, series: str, what: str, min_factor: float = MIN_GROWTH):
    """How ``values`` grew in the finite stretch before ``stop_step``, or None if it did not grow ``min_factor``x."""
    s, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    keep = (s < stop_step) & np.isfinite(v)
    s, v = s[keep], np.abs(v[keep])
    if v.size < 3:
        return None
    k = max(3, v.size // 10)
    base = float(np.median(v[:k]))
    peak_i = int(np.argmax(v))
    if peak_i < v.size - 3:         # the largest value must be at the end: a growth up to the NaN
        peak_i = v.size - 1 - int(np.argmax(v[::-1][:3]))
    calm = np.flatnonzero(v[: peak_i + 1] <= BASE_FACTOR * max(base, 1e-30))
    onset = int(calm[-1]) if calm.size else 0
    if onset >= peak_i or v[onset] <= 0 or v[peak_i] < min_factor * v[onset]:
        return None
    from_start = onset <= max(1, int(0.05 * v.size))
    return Growth(series, what, int(s[onset]), int(s[peak_i]), float(v[onset]), float(v[peak_i]), from_start)


def growth_facts(growth: Growth, ctx) -> dict:
    return {"before_nan": True, "growth_from_start": growth.from_start, "growth_onset_step": growth.onset_step,
            "growth_factor": growth.factor, "lr_rose": ctx.lr_rise_before(growth.onset_step + 1)}


def link(ctx) -> None:
    """Name the precursor of ``nan_inf``: the growth finding that ended where the NaN began; and of
    gradients that vanished only after the loss diverged."""
    after_divergence(ctx)
    nan = ctx.found.get("nan_inf")
    if nan is None:
        return
    for symptom in ("exploding_gradients", "divergence"):
        pre = ctx.found.get(symptom)
        if pre is None or not pre.facts.get("before_nan"):
            continue
        summary = pre.facts.get("growth_summary") or pre.title
        nan.precursor = Precursor(symptom, pre.first_step, pre.last_step, summary)
        nan.facts["precursor"] = symptom
        for key in ("growth_from_start", "growth_onset_step", "growth_factor", "lr_rose"):
            if key in pre.facts:
                nan.facts[key] = pre.facts[key]
        pre.facts["leads_to"] = "nan_inf"
        nan.title += f", after {summary}"
        return


def after_divergence(ctx) -> None:
    """Gradients that vanish only after the loss left its best level (``divergence``'s first step)
    are the blow-up's doing: its huge updates drove the units to their flat ends (an LSTM's gates
    at 0 and 1) and the first layers get nothing through them. A 2-layer LSTM LM at 100x its LR
    read "depth without skip connections (strong fit): add residual connections" beside its
    divergence (trial 18 U8)."""
    div, van = ctx.found.get("divergence"), ctx.found.get("vanishing_gradients")
    if div is None or van is None or van.precursor is not None or div.first_step is None \
            or van.first_step is None or van.first_step <= div.first_step:
        return
    summary = f"the loss diverged from its best at step {div.first_step}"
    van.precursor = Precursor("divergence", div.first_step, div.last_step, summary)
    van.facts["precursor"] = "divergence"
    van.facts["after_divergence"] = True
    div.facts.setdefault("leads_to", "vanishing_gradients")
    van.title += ", after the loss diverged"
