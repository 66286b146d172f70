"""``unnormalized_inputs``: the model's inputs are far from zero mean / unit scale."""
from __future__ import annotations

from trainspect.recorder.format import SYS_INPUT_MAX, SYS_INPUT_MEAN, SYS_INPUT_MIN, SYS_INPUT_STD

from .. import input_rules
from ..signals import NORM_TYPES
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
    if STALLED & loud:
        return True
    norm = _normalised_after_first_layer(ctx)
    if f.facts.get("tiny"):
        f.severity = "info"
        f.title += " (the run trains: a note)"
    elif norm:
        # fast_neural_style feeds 0-255 pixels to conv1 and InstanceNorm right after it, by design:
        # every healthy run got a warning (trial 15)
        f.severity = "info"
        f.title += f" (the {norm} right after the first layer removes their scale, and the run trains: a note)"
    return True


PASS_THROUGH = {"ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d", "ConstantPad2d", "ReflectionPad1d", "Identity"}


def _normalised_after_first_layer(ctx) -> str | None:
    """The type of a normalisation layer registered right after the first weight layer (padding
    between them allowed), or None: what the first layer makes of the inputs' scale, it takes out."""
    with_weights = {p.module for p in ctx.sig.params if len(p.shape) >= 2}
    modules = list(ctx.sig.modules)
    first = next((i for i, m in enumerate(modules) if m.name in with_weights), None)
    if first is None:
        return None
    for m in modules[first + 1:]:
        if m.type in PASS_THROUGH:
            continue
        return m.type if m.type in NORM_TYPES else None
    return None


SPEC = SymptomSpec(
    id="unnormalized_inputs",
    looks_at="`sys/input_mean`, `sys/input_std` (skipped for Embedding-first models; constant batches, std 0, "
             "are not evidence)",
    fires_when="RMS > 5 or < 0.02, or |mean| > 2 and > 2 std (LeCun, Efficient BackProp); a note (info) when "
               "nothing stalled and the inputs are tiny, or a normalisation layer follows the first layer",
    detect=detect,
    priors={"input_scaling": 0.95},
    word="badly scaled first-layer pre-activations",
    adjust=adjust,
    settle=settle,
    needs=("inputs",),
)
