"""``rank_nonfinite_first``: one rank's values went NaN/Inf before the other ranks'."""
from __future__ import annotations

from .. import rank_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if sig.ranks is None:
        return None
    return rank_rules.detect_rank_nonfinite_first(sig.ranks.nonfinite)


def adjust(s, f, ctx):
    if f.facts.get("forward_first"):
        s.boost("rank_local_data", 0.85, "its loss was non-finite before any rank's gradients were: the forward "
                                         "pass of that rank's batch produced it")


SPEC = SymptomSpec(
    id="rank_nonfinite_first",
    looks_at="every rank's training loss, `sys/grad_norm`, `sys/nonfinite_grads` (distributed runs)",
    fires_when="a rank's first NaN/Inf comes before another rank's (by step, then loss before gradients: the "
               "all-reduce spreads a rank-local NaN into every rank's gradients within the step), or only some "
               "ranks have any",
    detect=detect,
    priors={"rank_local_data": 0.6, "numerical_instability": 0.4},
    word="NaN",
    adjust=adjust,
    scope="ranks",
)
