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


SPEC = SymptomSpec(
    id="unnormalized_inputs",
    looks_at="`sys/input_mean`, `sys/input_std` (skipped for Embedding-first models; constant batches, std 0, "
             "are not evidence)",
    fires_when="RMS > 5 or < 0.02, or |mean| > 2 and > 2 std (LeCun, Efficient BackProp)",
    detect=detect,
    priors={"input_scaling": 0.95},
    word="outsized first-layer pre-activations",
    needs=("inputs",),
)
