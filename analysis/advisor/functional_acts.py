"""Activations applied as functions (``F.relu(x)`` in ``forward()``, the style of pytorch/examples
and most research code) leave no ReLU module for ``activation_rules`` to judge.

The recorder keeps the statistics of every leaf module's output, so a Linear/Conv output is the
pre-activation of whatever function follows. ReLU(x) <= 0 exactly where x <= 0, so the dead-unit
fraction of the pre-activation is the dead-unit fraction behind a functional ReLU. It is only
read for models with no activation module at all (those apply their activations as functions),
never for the last Linear/Conv (logits may be negative) nor for parallel heads (``sibling_heads``:
a VAE's mu/logvar, an actor-critic's action/value heads), and only the strict criterion is used
(most units <= 0 for the whole batch): a Linear unit that stays negative for a whole batch is
rare unless something clamps it to zero afterwards.
"""
from __future__ import annotations

import numpy as np

from ..findings import Finding
from .activation_rules import BOUNDED_TYPES, RELU_TYPES, _late, bounded_columns, detect_dead_units, relu_columns
from .series import nanmedian

PREACT_TYPES = {"Linear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"}
BN_ALL_DEAD = 0.9      # share of a BatchNorm's channels <= 0 for a whole batch that is judged (see below)
BATCH_NORM_TYPES = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
                    "LazyBatchNorm3d", "SyncBatchNorm"}
ACTIVATION_TYPES = RELU_TYPES | BOUNDED_TYPES | {
    "GELU", "SiLU", "LeakyReLU", "ELU", "SELU", "CELU", "PReLU", "Softplus", "Mish", "Hardswish", "GLU",
    "Threshold", "Tanhshrink", "Softshrink", "Hardshrink"}


# The output projections of attention and MLP blocks feed the residual stream, no activation:
# torch's TransformerEncoderLayer (linear1 -> F.relu -> linear2), GPT-2 (c_fc -> gelu -> c_proj),
# Llama (down_proj), T5 (wo). Half their outputs are <= 0 by design ("66% of
# enc.layers.5.linear2 dead behind F.relu?" on a healthy transformer block). Not "fc2": plain
# MLPs name their hidden layers fc1, fc2, ... with an F.relu after each.
OUTPUT_PROJECTIONS = {"linear2", "out_proj", "c_proj", "o_proj", "down_proj", "w2", "wo"}


def functional_candidates(types, modules=None, shapes=None) -> list[int]:
    """Columns that are pre-activations of a functional activation (empty if the model has
    activation modules); ``modules`` (their names) leaves out known output projections, and
    with ``shapes`` ({module: weight shape}) parallel heads (``sibling_heads``)."""
    if any(t in ACTIVATION_TYPES for t in types):
        return []
    cols = [j for j, t in enumerate(types) if t in PREACT_TYPES]
    cols = cols[:-1]     # the last one produces the outputs (logits)
    # conv -> bn -> F.relu (pytorch/examples, most CNNs): the BatchNorm's output is what the
    # F.relu sees; the conv's is re-centred by it. A CNN whose every unit behind F.relu(bn(x))
    # had died read "no sign of dead units" (trial 16, reduction='sum' under SGD).
    cols = [j + 1 if j + 1 < len(types) and types[j + 1] in BATCH_NORM_TYPES else j for j in cols]
    if modules is not None:
        cols = [j for j in cols if modules[j].rsplit(".", 1)[-1] not in OUTPUT_PROJECTIONS]
        heads = sibling_heads(types, modules, shapes or {})
        cols = [j for j in cols if j not in heads]
    return cols


def sibling_heads(types, modules, shapes: dict) -> set:
    """Columns of Linear/Conv layers registered one after the other that read inputs of the same
    width while neither can feed the next (in_features equal, the first's out_features not the
    second's in_features): parallel heads on one input, whose outputs are the model's results
    (a VAE's fc21/fc22 = mu/logvar, ``torch.exp(0.5 * logvar)``; actor and critic heads; bbox and
    class heads), not hidden layers an F.relu follows. Consecutive layers of a plain MLP never
    match: the second reads the first's output, so its in_features are the first's out_features.
    The VAE's decoder, registered after its heads, made fc22 the "85 % dead behind F.relu?"
    layer of a healthy log-variance (trial 15, F6)."""
    preact = [j for j, t in enumerate(types) if t in PREACT_TYPES]
    heads = set()
    for a, b in zip(preact, preact[1:]):
        sa, sb = shapes.get(modules[a]), shapes.get(modules[b])
        # a depthwise conv's weight is (C, 1, k, k): its in-dimension says nothing about its input's width
        if (types[a] == types[b] and sa is not None and sb is not None and len(sa) >= 2 and len(sb) >= 2
                and sa[1] == sb[1] > 1 and sa[0] != sb[1]):
            heads |= {a, b}
    return heads


def weight_shapes(params) -> dict:
    """{module name: shape of its ``weight``} from the run's parameters (``Run.params``)."""
    return {p.module: tuple(p.shape) for p in params or ()
            if p.name.rsplit(".", 1)[-1] == "weight" and p.shape is not None}


def judged_columns(stat: str, types, modules, shapes=None) -> tuple:
    """(the columns of a per-module activation statistic the advisor judges, the words for them);
    (None, "") for a statistic that means something on every module. Dead units: ReLU-family
    outputs, or, in a model without activation modules, the Linear/Conv outputs a functional
    F.relu follows; saturation: sigmoid/tanh-family outputs. Elsewhere they mean nothing (a
    healthy LayerNorm or logit output has many units <= 0 for a whole batch)."""
    if stat == "act_frac_saturated":
        return bounded_columns(types), "sigmoid/tanh-family outputs"
    if stat != "act_dead_frac":
        return None, ""
    cols = relu_columns(types)
    functional = [] if cols else functional_candidates(types, modules, shapes)
    if functional:
        return functional, "Linear/Conv outputs before a functional F.relu"
    return cols, "ReLU-family outputs"


def detect_dead_behind_functions(steps, dead_frac, modules, types, *, dead=0.5, label=str,
                                 grad_norm=None, shapes=None) -> Finding | None:
    cols = functional_candidates(types, modules, shapes)
    if grad_norm is not None:
        elsewhere = _not_behind_a_relu(dead_frac, grad_norm, modules, cols)   # read once, not per column
        cols = [j for j in cols if j not in elsewhere]
    if not cols:
        return None
    # A BatchNorm channel below 0 for a whole batch is a channel whose shift beat its scale: a
    # healthy BN CNN trained at SGD 0.05 kept 20 of 32 such channels and reached 91 % accuracy.
    # Behind a BatchNorm only a block that is (nearly) all dead is judged: nothing flows past it.
    norm = [j for j in cols if types[j] in BATCH_NORM_TYPES]
    f = None
    for judged, level in (([j for j in cols if j not in norm], dead), (norm, max(dead, BN_ALL_DEAD))):
        if judged:
            as_relu = ["ReLU" if j in set(judged) else "" for j in range(len(types))]
            # nonpos above 1 switches off the looser outputs-<=-0 criterion (see the module docstring).
            f = detect_dead_units(steps, dead_frac, None, modules, as_relu, dead=level, nonpos=1.01, label=label)
        if f is not None:
            break
    if f is None:
        return None
    f.title = f.title.replace("dead ReLUs:", "dead units behind a functional activation (F.relu?):", 1)
    for e in f.evidence:
        e.text = ("pre-activation (output of the layer, before the F.relu/activation applied in forward()): "
                  + e.text)
    return f


ALL_DEAD = 0.99   # every unit <= 0 for the whole batch


def _not_behind_a_relu(dead_frac, grad_norm, modules, cols, tail: float = 0.5) -> set:
    """Columns whose every unit is <= 0 for the whole batch while the layer's weight still gets
    a gradient. Behind a ReLU such a layer gets none (its outputs are all clipped to 0): its
    output goes elsewhere, like a VAE's log-variance head (negative by nature, no F.relu after)."""
    index = {name: k for k, name in enumerate(grad_norm.layers)}
    weights = {j: index.get(f"{modules[j]}.weight") for j in cols}
    cols = [j for j in cols if weights[j] is not None]
    if not cols or not len(dead_frac) or not len(grad_norm):
        return set()
    with np.errstate(all="ignore"):
        d = nanmedian(_late(dead_frac.columns(cols), tail, dead_frac.steps), axis=0)
        g = nanmedian(_late(grad_norm.columns([weights[j] for j in cols]), tail, grad_norm.steps), axis=0)
    return {j for j, dj, gj in zip(cols, d, g) if dj >= ALL_DEAD and gj > 0}
