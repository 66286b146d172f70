"""``symmetric_weights``: all units of a layer identical (constant/zero init never broken)."""
from __future__ import annotations

from .. import weight_rules
from ..spec import SymptomSpec
from ._cut import shapes_of


def detect(sig, ctx):
    snaps, wn = sig.snapshots, sig.layer.get("weight_norm")
    return weight_rules.detect_symmetric(
        snaps.steps if snaps is not None else [], snaps.data if snaps is not None else None,
        snaps.shapes if snaps is not None else None, snaps.layers if snaps is not None else [],
        weight_steps=wn.steps if wn is not None else [], weight_norm=wn,
        param_layers=wn.layers if wn is not None else None,
        param_numel=shapes_of(sig, wn.layers)[1] if wn is not None else None, label=ctx.label)


SPEC = SymptomSpec(
    id="symmetric_weights",
    looks_at="32x32 weight snapshots (rows = units); without snapshots, `weight_norm == 0`",
    fires_when="every row of the last snapshot identical within 1e-3 x scale",
    detect=detect,
    priors={"bad_init": 0.95},
    word="symmetry",
    needs=("weight_snapshots",),
)
