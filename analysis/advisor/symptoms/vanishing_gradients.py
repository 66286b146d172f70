"""``vanishing_gradients``: the first layer's gradient is tiny against the last layer's."""
from __future__ import annotations

from .. import gradient_rules
from ..causes import init_too_small, weights_symmetric
from ..spec import SymptomSpec
from ._cut import rows_before, shapes_of


def detect(sig, ctx):
    gt = sig.layer.get("grad_norm")
    if gt is None:
        return None
    cut = rows_before(gt.steps, ctx.nan_step)
    shapes, numel = shapes_of(sig, gt.layers)
    return gradient_rules.detect_vanishing(gt.steps[:cut], gt.head(cut), gt.layers, shapes, numel, label=ctx.label)


def adjust(s, f, ctx):
    if f.facts.get("after_divergence"):
        # gradients were there until the loss blew up (chains.after_divergence): its cause is this one's
        s.boost("lr_too_high", 0.9, "the gradients vanished only after the loss diverged: the blown-up updates "
                                    "drove the units (sigmoid/tanh, an LSTM's gates) to their flat ends")
        for cause in ("depth_without_skip_connections", "bad_init", "missing_normalization"):
            s.damp(cause, 0.2)
        s.damp("activation_choice", 0.5)
        return
    weights_symmetric(s, ctx)
    if ctx.has_bounded_acts and not init_too_small(ctx):
        s.boost("activation_choice", 0.8, "sigmoid/tanh derivatives (<= 0.25 / 1) shrink the gradient at every layer")
    if ctx.has_attention:
        # transformer blocks are residual: the depth has its skips. Post-LN blocks (LayerNorm
        # after the residual add) starve the input side of gradient without an LR warm-up
        # (Xiong et al., ICML 2020), the reason warm-up became standard.
        s.damp("depth_without_skip_connections", 0.2)
        if not ctx.warmed_up:
            s.boost("lr_too_high", 0.7, "a transformer trained at its full LR from the first step, without a "
                                        "warm-up: post-LN blocks then starve the first layers of gradient "
                                        "(Xiong et al., 2020)")
    elif ctx.deep:
        s.boost("depth_without_skip_connections", max(s.get("depth_without_skip_connections"), 0.7),
                f"{ctx.n_weight_layers} weight layers in a chain")
    if ctx.has_norm_layers:
        s.damp("missing_normalization", 0.3)


SPEC = SymptomSpec(
    id="vanishing_gradients",
    looks_at="per-layer `grad_norm`, first vs last weight matrix",
    fires_when="per-element ratio < 1e-3 and first-layer norm < 1e-4 in >= half the run (AutoTrainer, ICSE'21)",
    detect=detect,
    priors={"depth_without_skip_connections": 0.4, "activation_choice": 0.35, "bad_init": 0.25,
            "missing_normalization": 0.2},
    word="vanishing gradient",
    adjust=adjust,
    needs=("gradients",),
)
