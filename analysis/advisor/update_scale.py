"""How large an update/weight ratio is, for the optimizer that made it.

cs231n's "about 1e-3" is a rule for SGD, whose step is ``lr * gradient``. An Adam-family step moves
each element by up to ~``lr`` whatever the gradient's scale (its very first step by exactly ``lr``),
so its ratio is about ``lr`` over the weights' RMS: Adam at its default 1e-3 on small layers (RMS
0.05-0.1) sits near 1e-2 by design. Measured median ratios (over weight matrices and the run):

- SGD: healthy runs of the scenario suite 2e-3..9e-3; too-high LRs 1e-2 and up.
- Adam-family: healthy 2e-3..9e-3 in the suite and in third-party code (GPT-2 8.5e-3, GCN at Adam
  1e-2 6.3e-3); a GCN whose labels were misaligned to the nodes, at that healthy LR, 1.9e-2 (read
  "lr too high, far above 1e-3", trial 14); too-high LRs 1.5e-2..3e-2, and there the LR shows
  itself otherwise (the loss, weight_growth's LR against the weights' scale, the first steps'
  ratios of 0.25..1).

So for Adam-family optimizers a median between 1e-2 and 5e-2 is no evidence either way, and the
median even of a 100x LR stays there (Adam at lr 0.1 on a small MLP: 0.025; its weights grow and
its gradients turn to noise). What the LR sets is the first updates: lr / the weights' RMS, the
per-record peak. Healthy: 0.01..0.04 in the suite and the peers' corpus, 0.083..0.1 for the GCN at
1e-2 (small Xavier weights), labels misaligned or not; too-high LRs: 0.24 (30x) .. 1. A fine-tune's
peak says nothing of its LR: LoRA's B starts at 0 (peak 0.5 at a healthy 2e-3).
"""
from __future__ import annotations

# step ~ lr per element (RMSprop and Lion too: a normalised or sign step)
ADAM_LIKE = {"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Lion", "SparseAdam"}

SGD_RATIO_HIGH = 1e-2       # median over weight matrices above this: evidence for lr_too_high (SGD & co)
ADAPTIVE_RATIO_HIGH = 5e-2  # ... for an Adam-family optimizer (5x its usual ~1e-2)
ADAPTIVE_PEAK_HIGH = 0.2    # Adam-family: first updates of a fifth of the weights' RMS a step
SGD_PEAK_TOLERATED = 3e-2   # the largest per-record median a run with normal updates reaches (SGD & co)
ADAPTIVE_PEAK_TOLERATED = 0.15  # ... Adam-family (its first steps: lr / the RMS; too-high LRs 0.24-1)
FINE_TUNE = 0.5             # share of the parameters frozen at watch(): adapters may start at 0


def adaptive(optimizer: str) -> bool:
    return optimizer in ADAM_LIKE


def ratio_high_level(optimizer: str) -> float:
    """The median update/weight ratio above which the updates are too large for ``optimizer``."""
    return ADAPTIVE_RATIO_HIGH if adaptive(optimizer) else SGD_RATIO_HIGH


def updates_too_large(optimizer: str, median, peak, frozen_share: float = 0.0) -> str:
    """Why the updates are too large for ``optimizer`` ("median", "peak"), or "" when they are not."""
    if median is not None and median > ratio_high_level(optimizer):
        return "median"
    if adaptive(optimizer) and peak is not None and peak > ADAPTIVE_PEAK_HIGH and frozen_share < FINE_TUNE:
        return "peak"
    return ""


def peak_tolerated(optimizer: str) -> float:
    """The largest per-record ratio (the first steps, as a rule) a run with normal updates shows."""
    return ADAPTIVE_PEAK_TOLERATED if adaptive(optimizer) else SGD_PEAK_TOLERATED


def peak_normal_level(optimizer: str) -> float:
    """The largest per-record ratio of a run whose updates "stayed normal" throughout (SGD: no record
    above the high median itself; Adam-family: its first steps' lr/RMS, up to ADAPTIVE_PEAK_TOLERATED)."""
    return ADAPTIVE_PEAK_TOLERATED if adaptive(optimizer) else SGD_RATIO_HIGH


def usual_ratio(optimizer: str) -> str:
    """The yardstick in words, for evidence texts: "~1e-3 (cs231n)" is SGD's."""
    if adaptive(optimizer):
        return (f"~1e-2 for {optimizer} (each {optimizer} step moves a weight by up to ~lr; "
                f"{ratio_high_level(optimizer):g} is large)")
    return f"~1e-3 (cs231n; {ratio_high_level(optimizer):g} is large)"


def usual_level(optimizer: str) -> str:
    """The yardstick alone: "~1e-3 (cs231n)", "~1e-2 for Adam"."""
    return f"~1e-2 for {optimizer}" if adaptive(optimizer) else "~1e-3 (cs231n)"


def too_large_text(ctx) -> str:
    """The evidence for "the updates are too large", in words (``ctx.ratio_high`` is true)."""
    if ctx.ratio_high == "peak":
        return (f"the first updates moved the weight matrices {ctx.update_ratio_peak:.0%} of their size a step "
                f"(update/weight ratio at its largest; an {ctx.optimizer} step moves each weight by ~lr, so this "
                f"is the LR against the weights' scale; <= {ADAPTIVE_PEAK_TOLERATED:g} in healthy runs)")
    return f"update/weight ratio {ctx.update_ratio:.2g} is far above {usual_ratio(ctx.optimizer)}"
