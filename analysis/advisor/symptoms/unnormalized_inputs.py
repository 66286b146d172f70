"""``unnormalized_inputs``: the model's inputs are far from zero mean / unit scale."""
from __future__ import annotations

from trainspect.recorder.format import SYS_INPUT_MAX, SYS_INPUT_MEAN, SYS_INPUT_MIN, SYS_INPUT_STD

from .. import input_rules
from ..spec import SymptomSpec


def detect(sig, ctx):
    if SYS_INPUT_MEAN not in sig.scalars or SYS_INPUT_STD not in sig.scalars or ctx.token_model:
        return None
    ms, mv = sig.scalars[SYS_INPUT_MEAN]
    _, sv = sig.scalars[SYS_INPUT_STD]
    n = min(len(mv), len(sv))
    lo, hi = sig.scalars.get(SYS_INPUT_MIN), sig.scalars.get(SYS_INPUT_MAX)
    return input_rules.detect_unnormalized(ms[:n], mv[:n], sv[:n], lo[1] if lo else None, hi[1] if hi else None)


def adjust(s, f, ctx):
    if f.facts.get("tiny"):
        s.boost("input_scaling", 0.95, f"inputs far below unit scale (RMS {f.facts['rms']:.2g}): the first layer's "
                                       f"weights must grow ~{1 / max(f.facts['rms'], 1e-12):.0f}x before the inputs count")


# A training problem that tiny inputs could explain; without one they are a note (row-normalised
# bag-of-words features, as pytorch/examples' GCN feeds Cora, train well with Adam).
STALLED = {"no_progress", "early_plateau", "slow_convergence", "vanishing_gradients", "dead_units"}


def settle(f, ctx):
    loud = {s for s, g in ctx.found.items() if g.severity != "info"}
    if f.facts.get("tiny") and not (STALLED & loud):
        f.severity = "info"
        f.title += " (the run trains: a note)"
    return True


SPEC = SymptomSpec(
    id="unnormalized_inputs",
    looks_at="`sys/input_mean`, `sys/input_std` (skipped for Embedding-first models; constant batches, std 0, "
             "are not evidence)",
    fires_when="RMS > 5 or < 0.02, or |mean| > 2 and > 2 std (LeCun, Efficient BackProp)",
    detect=detect,
    priors={"input_scaling": 0.95},
    word="badly scaled first-layer pre-activations",
    adjust=adjust,
    settle=settle,
    needs=("inputs",),
)
