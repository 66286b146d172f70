"""``symmetric_weights``: all units of a layer identical (constant/zero init never broken)."""
from __future__ import annotations

from .. import weight_rules
from ..spec import SymptomSpec
from ._cut import shapes_of


def detect(sig, ctx):
    snaps, wn = sig.snapshots, sig.layer.get("weight_norm")
    f = _detect(sig, ctx, snaps, wn)
    # A matrix nothing trains (frozen, or outside the watched optimizer: a LoRA B the optimizer,
    # built before get_peft_model, never holds) keeps its init whatever it is: frozen_layers says so.
    untrained = (ctx.frozen_params or set()) | (ctx.unoptimized_params or set())
    return _without(f, untrained, ctx)


def _without(f, untrained, ctx):
    """``f`` less the layers in ``untrained``; None when none is left."""
    if f is None or not untrained or not set(f.layers) & untrained:
        return f
    if set(f.layers) <= untrained:
        return None
    keep = [i for i, e in enumerate(f.evidence) if e.layer not in untrained]
    f.layers = [n for n in f.layers if n not in untrained]
    f.evidence = [f.evidence[i] for i in keep]
    f.title = (f"symmetric weights: all units of {ctx.label(f.layers[0])} are identical"
               + (f" (and {len(f.layers) - 1} more layer(s))" if len(f.layers) > 1 else ""))
    return f


def settle(f, ctx):
    """Identical units of a matrix that never received an update (frozen_layers: a gradient the
    optimizer never applied, LR 0, or no gradient at all, a graph cut) are that finding's doing, not
    bad init: a LoRA B, a ReZero / adaLN-Zero gate is zero on purpose and breaks its symmetry with
    its first update (trial 18 U1: a LoRA at LR 0 and one under reentrant checkpointing were told
    "bad init (strong fit)" ahead of the LR 0 / graph cut that frozen_layers proves)."""
    frozen = ctx.found.get("frozen_layers")
    unmoved = set(frozen.facts.get("unmoved_layers") or ()) if frozen is not None else set()
    return _without(f, unmoved, ctx) is not None


def _detect(sig, ctx, snaps, wn):
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
    settle=settle,
)
