"""``loss_summed``: a cross-entropy summed over the batch rather than averaged, under an
optimizer whose step grows with the loss's scale.

``nn.CrossEntropyLoss(reduction="sum")`` with SGD at an LR tuned for the mean takes steps
batch-size times too large. An imagenet-style ResNet with SGD 0.1 and batches of 64 (trial 15,
F13) started at 153.6, jumped to 401, had a first validation loss of 500, and finished at
validation loss 0.83 and accuracy 0.69 (0.31 and 0.90 with the mean), with "no problems
found". The first loss tells: an untrained model with small scores (std s) costs about
ln(C) + s^2/2 per sample, and a first loss that many times the batch size is a sum over it.
Adam, RMSprop and the like divide the scale out, so it is not judged for them. A run whose model
is watched without an optimizer updates by hand (``p.data.add_(p.grad, alpha=-lr)``, pytorch/
examples' word_language_model): plain SGD, judged as such (trial 16, M4). A language model's loss
summed over every token of a (B, T) batch is B*T per-token losses: it is compared with the tokens
(``sys/input_numel``) too; under gradient clipping only when the clip cut nearly every step down
(a sum over each sequence's steps, averaged over the batch, is the seq2seq tutorial's, healthy).
A multi-task model's last matrix is often its one-output regression head: its logged loss terms
are judged against its other heads too (trial 14, L6: CE + MSE summed over a batch of 64 read
"reduce the LR 10x"; train/loss_cls started at 104 = 64 x 1.63).
"""
from __future__ import annotations

import math

import numpy as np

from trainspect.recorder.format import SYS_BATCH_SIZE, SYS_INPUT_NUMEL

from ...findings import Evidence, Finding, Fix
from ..series import finite_prefix, fmt
from ..spec import SymptomSpec
from ..activation_rules import BOUNDED_TYPES, RELU_TYPES
from ..summed_evidence import FIRST_RECORDS, bias_grad_balance, first_count, output_bias_grad, token_count, update_rule
from .loss_at_init_high import LARGE, random_score_loss

# Activation modules that end a shared trunk: the weight layers after the last one are heads.
HIDDEN_ACTIVATIONS = set(RELU_TYPES) | set(BOUNDED_TYPES) | {"LeakyReLU", "ELU", "GELU", "SiLU", "Mish"}
AGREE = 0.3        # the first loss / the per-sample loss within 30 % of the batch size
MIN_BATCH = 4      # a smaller batch leaves the ratio too close to a mean's 1
# A mean softmax cross-entropy's output-bias gradient is at most sqrt(2) (see summed_evidence.output_bias_grad):
# well above it, the loss is a sum.
SOFTMAX_BIAS_BOUND = 1.5 * math.sqrt(2)
ZERO_SUM = 0.25    # the output bias's gradient sums to ~0 over the classes, as a softmax's does
# A sum over every token of a (B, T) batch of ids: the first loss / the per-token loss is between
# these factors of the tokens (padding or ignore_index leave up to half of them out of the sum).
TOKENS_AGREE = (0.5, 1.3)
# Findings that say the steps were too short: a token sum clipped to max_norm at every step is a
# warning with one of them, else a note.
STARVED = ("slow_convergence", "no_progress", "early_plateau", "small_updates")


def detect(sig, ctx):
    batch = sig.scalars.get(SYS_BATCH_SIZE)
    if sig.train_loss is None or batch is None:
        return None
    update = update_rule(sig, ctx)
    if update is None:
        return None
    size = first_count(sig, SYS_BATCH_SIZE)
    if size is None or size < MIN_BATCH:
        return None
    for name, steps, values, module, std, classes in _judged(sig, ctx):
        found = _judge(sig, ctx, name, steps, values, module, std, classes, size, update)
        if found is not None:
            return found
    return None


def _judged(sig, ctx):
    """(loss name, steps, values, head module, its first output std, its classes) to judge: the
    training loss against the output layer; in a model with several heads (the weight layers after
    the last activation: a classification and a regression head on a shared trunk), each logged loss
    term against each other head of >= 2 outputs (the last matrix there is often the regression's)."""
    classes = ctx.n_tokens if ctx.token_model and ctx.n_tokens else ctx.n_outputs
    if ctx.initial_output is not None and classes and classes >= 2:
        yield (*sig.train_loss, *ctx.initial_output, classes)
    heads = _sibling_heads(sig, ctx)
    for name, (steps, values) in sig.loss_terms.items() if heads else ():
        for module, std, outputs in heads:
            yield name, steps, values, module, std, outputs


def _sibling_heads(sig, ctx) -> list:
    """(module, first output std, outputs) of the heads beside the output layer: weight layers of
    >= 2 outputs that come after the model's last activation module, as the output layer does."""
    act = sig.layer.get("act_std")
    if act is None or not len(act) or ctx.initial_output is None:
        return []
    leaves = [m for m in sig.modules if "#" not in m.name]
    weights = {p.module: p for p in sig.params if len(p.shape) == 2}
    last_act = max((i for i, m in enumerate(leaves) if m.type in HIDDEN_ACTIVATIONS), default=None)
    if last_act is None:
        return []
    first = act.read(0, 1)[0]
    layers = list(act.layers)
    heads = []
    for m in leaves[last_act + 1:]:
        w = weights.get(m.name)
        if w is None or m.name == ctx.initial_output[0] or int(w.shape[0]) < 2 or m.name not in layers:
            continue
        std = float(first[layers.index(m.name)])
        if np.isfinite(std):
            heads.append((m.name, std, int(w.shape[0])))
    return heads


def _judge(sig, ctx, name, steps, values, module, std, classes, size, update):
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if not len(values) or std >= LARGE:
        return None
    first, per_sample = float(values[0]), random_score_loss(std, classes)
    times = first / per_sample
    tokens = token_count(sig, size)
    if abs(times / size - 1) <= AGREE and not ctx.clips:    # clipped steps are bounded, whatever the loss's scale
        tokens = None
    elif not (tokens and TOKENS_AGREE[0] <= times / tokens <= TOKENS_AGREE[1]) or (ctx.clips and not ctx.clipping):
        return None     # (a sum over every token under clipping only when the clip cut down nearly every step)
    bias = output_bias_grad(sig, module)
    if bias is None or bias < SOFTMAX_BIAS_BOUND:
        return None
    balance = bias_grad_balance(sig, module)
    if balance is None or balance > ZERO_SUM:    # not a softmax's gradient: a regression's loss, say
        return None
    facts = {"first_loss": round(first, 5), "per_sample": round(per_sample, 5), "batch_size": size,
             "times": round(times, 3), "output_bias_grad": round(bias, 5), "update": update, "series": name}
    severity = "warning"
    if tokens is None:
        head = module if module != (ctx.initial_output or ("",))[0] else None    # a loss term's own head
        title, count = _over_the_batch(name, first, per_sample, times, size, update, head)
    else:
        title, count = _over_the_tokens(name, first, per_sample, times, tokens, size, update, ctx, facts)
        if ctx.clipping:
            # steps of max_norm's length may suit the LR (a sum at the mean's LR trained as well as the
            # mean): a warning when the loss says the steps were too short, else a note
            starved = next((ctx.found[k] for k in STARVED if k in ctx.found), None)
            severity = "warning" if starved is not None else "info"
            title += f"; and the steps were too short ({starved.symptom})" if starved is not None else ""
    return Finding(
        symptom="loss_summed", severity=severity, first_step=int(steps[0]), last_step=int(steps[-1]),
        title=title,
        evidence=[
            Evidence(series=name, steps=[int(steps[0])], values=[round(first, 5)], threshold=AGREE,
                     text=(f"the first {name} {fmt(first)} is {times:.1f}x {fmt(per_sample)}, the cross-entropy of "
                           f"{classes} scores of std {std:.2g} (the output layer's at the first record; ln({classes}) = "
                           f"{math.log(classes):.3g}) for one {'token' if tokens else 'sample'}")),
            count,
            Evidence(series="grad_norm", values=[round(bias, 4)], threshold=SOFTMAX_BIAS_BOUND,
                     text=(f"the output layer's bias got a gradient of norm {bias:.3g} in the first steps: a softmax "
                           f"cross-entropy averaged over the batch cannot give it more than sqrt(2) = 1.41"))],
        facts=facts)


def _over_the_batch(name, first, per_sample, times, size, update, head=None) -> tuple:
    """Title and count evidence of a loss summed over the batch (``head``: the head whose loss term it is)."""
    of = f" (the cross-entropy of head {head})" if head else ""
    title = (f"{name}{of} is summed over the batch, not averaged: the first loss {fmt(first)} is {times:.0f}x the "
             f"{fmt(per_sample)} an untrained model costs per sample, and the batch holds {size:.0f}: "
             f"the steps of {update} are ~{size:.0f}x the ones its LR was tuned for")
    return title, Evidence(
        series=SYS_BATCH_SIZE, values=[size], threshold=AGREE,
        text=(f"the model's first input held {size:.0f} items along its first dimension (sys/batch_size: the batch, "
              f"or a sequence-first RNN's time steps): the ratio is that count within {AGREE:.0%}, the signature of a "
              "sum (reduction='sum', or losses added up over the steps)"))


def _over_the_tokens(name, first, per_sample, times, tokens, size, update, ctx, facts) -> tuple:
    """Title and count evidence of a loss summed over every token of the batch; ``facts`` gets the
    tokens, the terms summed as the causes' step factor, and the steps' words where clipped."""
    facts.update(tokens=tokens, batch_size=round(times))
    if ctx.clipping:
        facts["steps"] = (f"clip_grad_norm_ cuts every step's gradient ~{ctx.clipping['pre'] / ctx.clipping['post']:.0f}x "
                          "down: each step is max_norm long, whatever the gradient")
    title = (f"{name} is summed over every token of the batch, not averaged: the first loss {fmt(first)} is "
             f"{times:.0f}x the {fmt(per_sample)} an untrained model costs per token, and the batch holds "
             f"{tokens:.0f} tokens ({size:.0f} x {tokens / size:.0f}): " + _token_steps(ctx, update, times))
    return title, Evidence(
        series=SYS_INPUT_NUMEL, values=[tokens], threshold=TOKENS_AGREE[0],
        text=(f"the model's first input, token ids, held {tokens:.0f} elements (sys/input_numel): the ratio is "
              f"{times / tokens:.2f}x that count ({TOKENS_AGREE[0]:g}-{TOKENS_AGREE[1]:g}: padding or ignore_index "
              "leave tokens out), a cross-entropy summed over every token (reduction='sum' over the flattened "
              "(B*T, V) scores)"))


def _token_steps(ctx, update: str, times: float) -> str:
    """What the sum does to the steps: ~N x the mean's, or, where clipping cut nearly every step
    down (its gradient ~N x the mean's), steps of the clip's length whatever the gradient."""
    c = ctx.clipping
    if not c:
        return f"the steps of {update} are ~{times:.0f}x the ones its LR was tuned for"
    return (f"its gradient is ~{times:.0f}x the mean's, and clip_grad_norm_ cut {c['share']:.0%} of the steps' "
            f"gradients below a tenth (median norm {fmt(c['pre'])} -> {fmt(c['post'])}): every step is the clip's "
            "length whatever the gradient, the clipping no longer a guard but the step size")


def adjust(s, f, ctx):
    update = f.facts.get("update") or ctx.optimizer
    if "tokens" not in f.facts:
        s.boost("loss_summed", 0.9, f"the first loss is {f.facts['times']:.0f}x one sample's, the batch size "
                                    f"({f.facts['batch_size']:.0f}): the step of {update} scales with the sum")
        return
    s.boost("loss_summed", 0.9, f"the first loss is {f.facts['times']:.0f}x one token's, ~the {f.facts['tokens']:.0f} "
                                "tokens of the batch: " + f.facts.get("steps", f"the step of {update} scales with the sum"))
    if "steps" in f.facts:      # clipped to max_norm at every step: no step was too long
        s.damp("lr_too_high", 0.3)


def fixes(f, ctx):
    if "tokens" not in f.facts:
        return []
    return [Fix("mean_reduction", "average the loss over the tokens: F.cross_entropy(logits.view(-1, V), targets.view(-1)) "
                                  "with reduction='mean' (the default; ignore_index leaves padding out of the mean), or "
                                  "divide the sum by the number of non-padding tokens")]


SPEC = SymptomSpec(
    id="loss_summed",
    looks_at="the first training loss (and logged loss terms), `sys/batch_size`, `sys/input_numel` (a token model's tokens), the output size "
             "C, the output layer's first activation std and bias gradient norm, the optimizer type and gradient clipping",
    fires_when=f"under an optimizer whose step grows with the loss's scale (SGD, or a hand-written update with no "
               f"optimizer watched, unless the run's config names an Adam-like one; not Adam, RMSprop, Adagrad, ...), "
               f"the first loss (in a model with several heads after its last activation, also each logged loss "
               f"term against each other head of >= 2 outputs) divided by the cross-entropy of C random scores of the output's first std (< {LARGE:g}) "
               f"is the batch size within {AGREE:.0%} (batches of >= {MIN_BATCH}) with no gradient clipping, or, for a "
               f"model fed token ids (an Embedding first), {TOKENS_AGREE[0]:g}-{TOKENS_AGREE[1]:g}x the tokens of the "
               f"batch (its input's elements), with no clipping or one that cut >= 80% of the steps' gradients below a "
               f"tenth; and the output layer's bias gradient in the first {FIRST_RECORDS} records exceeds 1.5 sqrt(2), "
               f"more than a mean softmax cross-entropy can give, while it sums to ~0 over the classes (|sum| <= "
               f"{ZERO_SUM:.0%} of the sum of its absolute values at the first gradient histogram) as a softmax's does "
               f"(warning; a token sum under such clipping is a note unless {', '.join(STARVED)} says the steps were "
               "too short)",
    detect=detect,
    priors={"loss_summed": 0.8, "lr_too_high": 0.3},
    word="step size",
    adjust=adjust,
    fixes=fixes,
    needs=("loss", "activations"),
)
