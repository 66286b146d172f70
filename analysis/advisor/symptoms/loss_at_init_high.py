"""``loss_at_init_high``: the untrained model's cross-entropy is far above ln(C) because its
output scores are already large: confident random guesses, the first thing Karpathy's recipe
checks ("verify loss @ init").

A C-way classifier that starts untrained should score about ln(C) (a uniform guess). Random
scores of standard deviation s cost more: about ln(C) + s^2/2 while s < sqrt(2 ln C), and about
s * sqrt(2 ln C) beyond (the log-sum-exp of C Gaussians). A BatchNorm ResNet initialised with
N(0, 1) weights ("std=1 like the paper", trial 15, F14) started at 6.2 = 2.7x ln(10) with output
std 2.78 (the formula: 6.0), spent its first steps undoing it and ended at accuracy 0.49 against
0.90, with "no problems found". Healthy runs of the scenario grid, the peers' corpus and the real
code start within 1.35x ln(C) with output std <= 1.2. The output std is what tells a cross-entropy
from a summed or regression loss, which can be far above ln(C) with small outputs.
"""
from __future__ import annotations

import math

import numpy as np

from ...findings import Evidence, Finding, Fix
from ..series import finite_prefix, fmt
from ..spec import SymptomSpec

HIGH = 1.5          # the first loss at least this many times ln(C)
LARGE = 1.0         # the output layer's first std at least this (PyTorch's default init: ~0.1-0.6)
AGREE = (0.5, 2.0)  # the first loss within these factors of the cross-entropy of random scores of that std
FIRST_RECORD = 5    # the output's first activation record at most this many steps after the first loss
# Init gain (weight RMS x sqrt(fan_in)) of the output layer or the median layer: PyTorch's default
# 0.58, Xavier ~1, He 1.41; N(0, 1) over 32-512 inputs 6-23. Large scores from standard weights are
# by design (ArcFace/CosFace multiply cosines by s = 30: output std 4.4-4.8 at gain 0.6-1.25).
GAIN_LARGE = 2.0


def random_score_loss(std: float, classes: int) -> float:
    """Expected cross-entropy of C independent N(0, std^2) scores against any fixed class."""
    edge = math.sqrt(2 * math.log(classes))
    return math.log(classes) + std * std / 2 if std <= edge else std * edge


def detect(sig, ctx):
    classes = ctx.n_tokens if ctx.token_model and ctx.n_tokens else ctx.n_outputs
    if sig.train_loss is None or not classes or classes < 2:
        return None
    name, steps, values = sig.train_loss
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if len(values) < 2:
        return None
    first, chance = float(values[0]), math.log(classes)
    if first < HIGH * chance:
        return None
    if ctx.initial_output is None or not _from_the_start(sig, int(steps[0])):
        return None
    module, std = ctx.initial_output
    expected = random_score_loss(std, classes)
    if std < LARGE or not AGREE[0] * expected <= first <= AGREE[1] * expected:
        return None
    gain = max(ctx.init_gain or 0.0, ctx.output_gain or 0.0)
    if gain < GAIN_LARGE:    # standard weights: the scores are large by design (an ArcFace head's scale s)
        return None
    return Finding(
        symptom="loss_at_init_high", severity="warning", first_step=int(steps[0]), last_step=int(steps[0]),
        layers=[module],
        title=(f"the untrained model's {name} was {fmt(first)}, {first / chance:.1f}x ln({classes}) = {chance:.3g}: its "
               f"outputs started with std {std:.2g} (confident random guesses: initialised too large?)"),
        evidence=[
            Evidence(series=name, steps=[int(steps[0])], values=[round(first, 5)], threshold=HIGH,
                     text=(f"the first {name} {fmt(first)} is {first / chance:.2f}x ln({classes}) = {chance:.4g}, the loss "
                           f"of a uniform guess over {classes} outputs (threshold {HIGH:g}x)")),
            Evidence(series="act_std", layer=module, values=[round(std, 4)], threshold=LARGE,
                     text=(f"the output layer's scores had std {std:.3g} at the first record (threshold {LARGE:g}); "
                           f"{classes} random scores of that std cost {fmt(expected)} in cross-entropy: the first loss "
                           "is what an untrained model with scores that large gets"))],
        facts={"first_loss": round(first, 5), "chance": round(chance, 5), "classes": int(classes),
               "output_std": round(std, 5)})


def _from_the_start(sig, first_step: int) -> bool:
    """The first activation record (``Context.initial_output``'s) is from the start of the run."""
    act = sig.layer.get("act_std")
    return act is not None and (act.steps is None or not len(act.steps) or act.steps[0] <= first_step + FIRST_RECORD)


def adjust(s, f, ctx):
    s.boost("bad_init", 0.85, f"the untrained outputs have std {f.facts['output_std']:.2g}: the weights (often a "
                              "custom normal_(0, 1) init, or an output layer not scaled down) start too large")


def fixes(f, ctx):
    return [Fix("init_output_small",
                f"initialise so the first loss is near ln({f.facts['classes']}) = {f.facts['chance']:.3g}: keep "
                "PyTorch's default (or He) init instead of normal_(0, 1), and scale the last layer's weights down "
                "(std ~0.01) so every class starts about equally likely")]


def settle(f, ctx):
    """Another warning or error (saturated units, raw inputs, exploding gradients) explains the
    large outputs of the same run and names the cause to fix: it keeps the run."""
    return not ctx.another_warns(f)


SPEC = SymptomSpec(
    id="loss_at_init_high",
    looks_at="the first training loss, the output size C, the last weight layer's activation std and the weight "
             "norms at the first record",
    fires_when=f"the first loss is >= {HIGH:g}x ln(C), the output layer's std at the first record is >= {LARGE:g} and "
               f"the first loss is within {AGREE[0]:g}-{AGREE[1]:g}x the cross-entropy of C random scores of that std "
               f"(ln C + s^2/2, or s * sqrt(2 ln C) for large s), the output layer's or the median layer's init gain "
               f"(weight RMS x sqrt(fan_in)) is >= {GAIN_LARGE:g} (default init 0.58, He 1.41), with no other "
               "warning (warning)",
    detect=detect,
    priors={"bad_init": 0.7, "input_scaling": 0.2},
    word="high first loss",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("loss", "activations"),
)
