"""``rank_loss_divergence``: the loss of some ranks stays apart from the other ranks'."""
from __future__ import annotations

from ...findings import Evidence
from .. import rank_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if sig.ranks is None or sig.ranks.loss is None:
        return None
    name, matrix = sig.ranks.loss
    f = rank_rules.detect_rank_loss_divergence(matrix, name)
    if f is not None and sig.ranks.in_sync is not None:
        f.facts["weights_in_sync"] = sig.ranks.in_sync
        f.evidence.append(Evidence(series="weight_norm", text=(
            "every rank's weight norms are equal: the replicas are in sync, so what differs is their data"
            if sig.ranks.in_sync else "the ranks' weight norms differ: the ranks train different models")))
    return f


def adjust(s, f, ctx):
    sync = f.facts.get("weights_in_sync")
    if sync is True:
        s.boost("inconsistent_data_sharding", 0.85, "the replicas' weights are equal, so the ranks differ in the "
                                                    "data they read")
        s.damp("unsynchronized_ranks", 0.2)
    elif sync is False:
        s.boost("unsynchronized_ranks", 0.9, "the ranks' weight norms differ: they are not training one model")


SPEC = SymptomSpec(
    id="rank_loss_divergence",
    looks_at="every rank's training loss (up to its first NaN) and weight norms (distributed runs)",
    fires_when="over the last third, a rank's median loss is > 20 % (`rel_gap`) and > 3 step-to-step noise sigmas "
               "away from the other ranks' median, on the same side at >= 80 % of the steps; equal weight norms "
               "across ranks (replicas in sync) point to data sharding, unequal ones to unsynchronised models",
    detect=detect,
    priors={"inconsistent_data_sharding": 0.5, "unsynchronized_ranks": 0.4},
    word="gap between the ranks' losses",
    adjust=adjust,
    scope="ranks",
)
