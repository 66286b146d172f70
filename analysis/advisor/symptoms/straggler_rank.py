"""``straggler_rank``: one rank of a distributed run is consistently slower than the others."""
from __future__ import annotations

from trainspect.recorder.format import SYS_DATA_WAIT

from .. import rank_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if sig.ranks is None:
        return None
    f = rank_rules.detect_straggler(sig.ranks.timing)
    if f is not None:
        # the rank-local data wait, not the (all-reduce-equalised) step time, named the rank
        f.facts["data_wait"] = any(e.series == SYS_DATA_WAIT and e.threshold is not None for e in f.evidence)
    return f


def adjust(s, f, ctx):
    if f.facts.get("data_wait"):
        s.boost("slow_data_loading", 0.8, "its wait between an optimizer step and the next forward is what is "
                                          "long: the time goes to fetching the batch")
        s.damp("slow_node", 0.6)
    else:
        s.boost("slow_node", 0.7, "its whole step is slower while its data wait is not: its device or host "
                                  "computes slower")


SPEC = SymptomSpec(
    id="straggler_rank",
    looks_at="every rank's `sys/step_time` and `sys/data_wait` (distributed runs)",
    fires_when="one rank's median is >= 1.5x the other ranks' median (`ratio`) and >= 2 ms above it, and it is the "
               "slowest at >= 70 % of the steps; under DDP the step times match (the all-reduce waits for the "
               "slowest), so the rank-local data-loader wait names the rank",
    detect=detect,
    priors={"slow_data_loading": 0.5, "slow_node": 0.5},
    word="straggler",
    adjust=adjust,
    scope="ranks",
)
