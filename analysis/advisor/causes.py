"""Cause ranking and fixes: all the evidence of a run together decides which cause is likely.

Each symptom's spec has prior confidences over causes (what usually produces it) and a small
adjust function that moves them with the run's facts (``Context``) and the findings' structured
``facts``; ``lr_consistency`` then keeps the LR from being called both too high and too low
without evidence for both. The ranked causes pick the fixes (``Fix(id, text)``, one id at most
once per finding) in the order a careful engineer would try them, and what experiment would
confirm the diagnosis.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from trainspect.recorder.format import SYS_AMP_SKIPPED, SYS_LOSS_SCALE

from ..findings import Cause, Finding, Fix
from ..optimizer_settings import weight_decays
from .context import SMALL_INIT, Context
from .dropout import STRONG_DROPOUT, strong_dropouts
from .gradient_rules import scale_free
from .input_scale import inputs_far_off
from .lr_groups import every_lr_zero, group_names, zero_lr_groups
from .optimizer_eps import DEFAULT_EPS_TEXT
from .series import fmt
from .spec import Scores
from .update_scale import too_large_text, usual_level

FIX_BOUNDED_TO_RELU = Fix("bounded_to_relu", "replace sigmoid/tanh in hidden layers with ReLU-family activations "
                                             "(ReLU/LeakyReLU/GELU)")
FIX_RELU_TO_LEAKY = Fix("relu_to_leaky", "replace ReLU with LeakyReLU/GELU so units cannot die")
FIX_SPIKE_BATCHES = Fix("inspect_batches", "inspect the batches at the spike/high-loss steps for wrong labels or "
                                           "corrupt samples")
FIX_NOISY_SAMPLES = Fix("inspect_batches", "look for mislabelled samples: sort the training set by per-sample loss "
                                           "and inspect the worst")
FIX_CLIP = Fix("clip_grads", "clip gradients (e.g. clip_grad_norm_ at 1.0)")
FIX_LR_RANGE = Fix("lr_range_test", "find a working LR with a range test: `from trainspect import lr_range_test`; "
                                    "lr_range_test(model, optimizer, batches, train_step, 'lr_sweep.h5').lr")
FIX_NORM_LAYERS = Fix("add_norm_layers", "add BatchNorm/LayerNorm between layers")


def _all(fixes, finding, ctx):
    return list(fixes)


@dataclass(frozen=True)
class CauseSpec:
    why: str                      # default reason, when no fact of the run gave a better one
    fixes: tuple                  # (Fix, ...) in the order to try them
    confirm: str                  # experiment; "{what}" is the symptom's word
    select: Callable = _all       # select(fixes, finding, ctx) -> the fixes that apply to this finding and model


RECURRENT_TYPES = {"RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"}   # tanh/sigmoid inside


def _init_fixes(fixes, finding, ctx):
    parts = []
    recurrent = any(m.type in RECURRENT_TYPES for m in ctx.sig.modules)
    bounded = ctx.has_bounded_acts or recurrent
    if ctx.has_relu or not bounded:
        parts.append("He (Kaiming) init for ReLU layers")
    if bounded:   # no tanh/sigmoid module: the activations are ReLU-like or functional (F.relu)
        parts.append("Xavier (Glorot) init for tanh/sigmoid layers" + (", orthogonal recurrent weights"
                                                                         if recurrent else ""))
    return [Fix("proper_init", f"use {', '.join(parts)}; never zero/constant weights"), *fixes[1:]]


HUGE_STEP = 0.75    # peak LR / the weights' RMS (weight_growth's lr_over_rms): steps of 3/4 of a weight


def _lr_fixes(fixes, finding, ctx):
    """With an LR range test of this model at hand, quote its suggestion (first) instead of saying how to run one.
    A transformer trained without a warm-up gets the warm-up first."""
    # (not when the LR is of the weights' own size: a warm-up only delays steps that large)
    huge = ctx.facts("weight_growth").get("lr_over_rms", 0.0) >= HUGE_STEP
    if ctx.has_attention and not ctx.warmed_up and not huge:
        fixes = sorted(fixes, key=lambda f: f.id != "lr_warmup")
    elif ctx.warmed_up:     # "add a warm-up" to a run that has one
        fixes = [Fix("lr_warmup", "lengthen the learning-rate warm-up") if f.id == "lr_warmup" else f for f in fixes]
    sweep = ctx.lr_sweep
    if sweep is None or sweep.suggested is None:
        return list(fixes)
    quoted = Fix("lr_range_test", f"set the LR to {sweep.suggested:.3g}, the suggestion of the LR range test "
                                  f"{sweep.name or ''}: {sweep.reason}".replace("test :", "test:"))
    return [quoted] + [f for f in fixes if f.id != "lr_range_test"]      # a measured LR first


SUMMED_LOSS = 8.0      # a first loss >= this x ln(C) is no untrained C-class classifier's mean loss


def _lr_high_fixes(fixes, finding, ctx):
    """A classifier whose first loss is many times ln(C), an untrained C-class model's mean loss,
    likely sums its loss over the batch (reduction='sum'): the gradients, and so the step, are
    batch-size times too large; the LR fix works, but the reduction is the mistake."""
    if finding.symptom == "return_not_improving":
        return _rl_lr_fixes(fixes)
    out = _lr_fixes(fixes, finding, ctx)
    c, loss = ctx.n_outputs, ctx.sig.train_loss
    if not c or c < 2 or loss is None or not len(loss[2]) or "loss_summed" in ctx.found:   # it says so, measured
        return out
    if c == ctx.n_inputs:    # outputs as many as the inputs: an autoencoder (a VAE's 784 pixels), no classes
        return out
    if "unnormalized_inputs" in ctx.found or initial_outputs_huge(ctx):   # raw inputs or a huge init make a
        return out                                                          # large first loss of their own
    first, per_class = float(loss[2][0]), math.log(c)
    if not (math.isfinite(first) and first >= SUMMED_LOSS * per_class):
        return out
    hint = Fix("check_loss_reduction", f"check the loss's reduction: the first {loss[0]} {first:.4g} is "
                                       f"{first / per_class:.0f}x ln({c}) = {per_class:.3g}, an untrained {c}-class "
                                       "classifier's mean loss: summed over the batch (reduction='sum')? average it "
                                       "(reduction='mean') or divide by the batch size: a sum makes every step "
                                       "batch-size times larger")
    return [*out[:1], hint, *out[1:]]


def _rl_lr_fixes(fixes):
    """An RL return judged by return_not_improving: an LR range test (a loss against a rising LR) and a
    warm-up say nothing about a policy's return; the LR change itself stays."""
    return [f for f in fixes if f.id not in ("lr_range_test", "lr_warmup", "check_lr_schedule")]


def _lr_low_fixes(fixes, finding, ctx):
    if finding.symptom == "return_not_improving":
        return _rl_lr_fixes(fixes)
    # a constant LR: no schedule to check; an LR the schedule cut 100x or more: the schedule first
    # (a StepLR stepped per batch instead of per epoch is fixed there, not by a 10x higher start)
    drop = ctx.lr_drop
    kept = [f for f in fixes if not (f.id == "check_lr_schedule" and drop is not None and drop < 2)]
    if drop is not None and drop >= 100 and _lr_cut_early(ctx):
        kept = [Fix("check_lr_schedule", f"check the LR schedule: it cut the LR {drop:.3g}x, to "
                                         f"{ctx.lr_values[-1]:.3g} (a scheduler stepped every batch where it "
                                         "expects epochs? a step size or milestones too small?)")
                if f.id == "check_lr_schedule" else f for f in kept]
        kept.sort(key=lambda f: f.id != "check_lr_schedule")
    elif ctx.warmup_unfinished or finding.symptom == "warmup_unfinished":
        v = ctx.lr_values
        zero = ctx.facts("warmup_unfinished").get("zero_steps", 0)
        kept = [Fix("check_lr_schedule", "check the LR schedule: " + "; ".join(
            ([f"the LR was exactly 0 at {zero} optimizer steps"] if zero else [])
            + ([f"the warm-up never finished: the LR rose {v[-1] / v[0]:.3g}x, from {v[0]:.3g} to {v[-1]:.3g}, and was "
                "still rising when the run ended"] if ctx.warmup_unfinished else []))
            + " (warmup_steps larger than the run's steps? a per-update schedule stepped with the epoch number?)")]
        kept += [f for f in fixes if f.id not in ("check_lr_schedule", "raise_lr")]
    return _lr_fixes(kept, finding, ctx)


SCHEDULE_END = 0.6    # a decay that reaches a tenth of its peak only after this share of the run is by design


def _lr_cut_early(ctx) -> bool:
    """The LR fell below a tenth of its peak within the first ``SCHEDULE_END`` of the run: a cut
    the schedule did not mean (a StepLR stepped per batch), not a cosine or linear decay to ~0 at
    the end (HF's cosine with warm-up: 985x from its first LR, by design; it was listed as fix 1)."""
    v, s = ctx.lr_values, ctx.lr_steps
    peak = int(np.argmax(v))
    below = np.flatnonzero(v[peak:] < v[peak] / 10)
    return bool(below.size) and s[peak + below[0]] - s[0] < SCHEDULE_END * max(s[-1] - s[0], 1)


def _regularization_fixes(fixes, finding, ctx):
    """'Add weight decay / dropout' to a run that has them (AdamW at 0.01, Dropout layers) said
    nothing of what it used: raise them instead."""
    decays = weight_decays(ctx.sig.meta.get("optimizer"))
    dropout = any(m.type.startswith("Dropout") or m.type.endswith("Dropout") for m in ctx.sig.modules)
    out = []
    for f in fixes:
        if f.id == "weight_decay" and decays:
            f = Fix("weight_decay", f"raise the weight decay (now {', '.join(f'{d:g}' for d in decays)})")
        elif f.id == "dropout_augment" and strong_dropouts(ctx.dropout_rates):   # no higher than ~0.9
            f = Fix("dropout_augment", "add data augmentation (the dropout is already strong: see dropout_too_strong)")
        elif f.id == "dropout_augment" and dropout:
            f = Fix("dropout_augment", "raise the dropout rate of the Dropout layers, or add data augmentation")
        out.append(f)
    return out


def output_only(finding, ctx) -> bool:
    """The finding is about the model's output activation alone (a ReLU or Sigmoid after the last
    layer), not about hidden ones."""
    return bool(ctx.output_module) and bool(finding.layers) and set(finding.layers) <= {ctx.output_module}


def _activation_fixes(fixes, finding, ctx):
    out = []
    at_output = output_only(finding, ctx)
    if ctx.has_bounded_acts and not at_output and finding.symptom in {
            "vanishing_gradients", "saturated_activations", "no_progress", "early_plateau", "frozen_layers",
            "slow_convergence"}:
        out.append(FIX_BOUNDED_TO_RELU)
    if ctx.has_relu and not at_output and (finding.symptom == "dead_units" or "dead_units" in ctx.found):
        out.append(FIX_RELU_TO_LEAKY)
    saturated = ctx.found.get("saturated_activations")
    stalled_by_output = finding.symptom in STALLED and (
        ctx.output_activation in SQUASHING_OUTPUTS or saturated is not None and output_only(saturated, ctx))
    act = finding.facts.get("output_activation") or (ctx.output_activation if at_output or stalled_by_output else "")
    if act:
        out.insert(0, Fix("output_activation", OUTPUT_FIX.get(act, f"remove the {act} on the output: the loss "
                                                                    "expects raw scores")))
    return out


OUTPUT_FIX = {
    "Softmax": "remove the Softmax on the output and train with cross_entropy on the raw scores (logits): it "
               "applies log_softmax itself (a softmax before MSE or cross_entropy learns slowly or stalls)",
    "Sigmoid": "remove the Sigmoid on the output: for regression its (0, 1) range must hold the targets (use the "
               "raw output); for classification hand the logits to BCEWithLogitsLoss / cross_entropy",
    "Tanh": "remove the Tanh on the output: its (-1, 1) range must hold the targets (use the raw output, or scale "
            "the targets into it)",
}
OUTPUT_FIX["Softmin"] = OUTPUT_FIX["Softmax"].replace("Softmax", "Softmin")


# An output module that squashes or clips the scores a loss expects raw (training_stalled names it)
SQUASHING_OUTPUTS = ("Softmax", "Softmin", "ReLU", "ReLU6")
STALLED = {"no_progress", "early_plateau", "slow_convergence"}


def _clip_fixes(fixes, finding, ctx):
    c = ctx.clipping
    if not c:
        return list(fixes)
    return [Fix("raise_clip_norm", f"raise clip_grad_norm_'s max_norm: it cut the gradient norm from a median "
                                   f"{c['pre']:.3g} to {c['post']:.3g} at {100 * c['share']:.0f} % of the steps; "
                                   "clip only the outliers (max_norm 1.0, or a few times the usual norm)"),
            *fixes[1:]]


def _decay_fixes(fixes, finding, ctx):
    w = ctx.weight_shrink
    adam = ctx.optimizer in ("Adam", "Adamax", "NAdam", "RAdam")
    out = []
    for f in fixes:
        if f.id == "lower_weight_decay" and w:
            f = Fix(f.id, f"lower the weight decay (now {w['decay']:g}): 1e-4 to 0.1 is usual")
        if f.id != "decoupled_decay" or adam:
            out.append(f)
    return out


def _eps_fixes(fixes, finding, ctx):
    e = ctx.eps_too_large
    if not e:
        return list(fixes)
    return [Fix("reset_eps", f"set eps back to {DEFAULT_EPS_TEXT} (now {e['eps']:g}): at {e['ratio']:.0f}x the "
                             f"gradients' typical RMS per element ({e['grad_rms']:.2g}) it makes each "
                             f"{e['optimizer']} step ~{e['ratio']:.0f}x smaller than it should be"), *fixes[1:]]


def _dropout_fixes(fixes, finding, ctx):
    strong = strong_dropouts(ctx.dropout_rates)
    if not strong:
        return list(fixes)
    by_p: dict = {}
    for r in strong:
        by_p.setdefault(f"{r.p:.2g}", []).append(ctx.label(r.module))
    where = "; ".join(f"~{p} in {', '.join(names)}" for p, names in by_p.items())
    return [Fix("lower_dropout", f"lower dropout p (now {where}): 0.1 to 0.5 is usual"), *fixes[1:]]


def _input_fixes(fixes, finding, ctx):
    """Tiny inputs (row-normalised sparse features): scale them up; subtracting the mean would
    make sparse features dense."""
    tiny = finding.facts.get("tiny") or ctx.facts("unnormalized_inputs").get("tiny")
    if not tiny:
        return list(fixes)
    return [Fix("standardise_inputs", "scale the inputs to unit size (divide by their std); keep sparse features' "
                                      "zeros (no mean subtraction)"), *fixes[1:]]


def _optimizer_fixes(fixes, finding, ctx):
    # Parameters left out of the optimizer keep their gradients (its zero_grad() never clears
    # them): the global norm grows, but adding them to the optimizer is the fix, not zero_grad().
    left_out = finding.symptom == "frozen_layers" and finding.facts.get("no_update")
    if zero := zero_lr_groups(ctx.sig):      # lr 0.0 given to a group: its parameters never move
        return [Fix("zero_lr_group", f"give {group_names(zero)} a learning rate above 0 (its 'lr' in the "
                                     "optimizer's param group dicts, or the scheduler that sets it)"), *fixes]
    if holds_none(ctx):
        # peft's get_peft_model() after the optimizer: it holds the base weights peft froze, none
        # of the adapters; "made from a copy of the model?" sent the user the wrong way (trial 14)
        why = ("built before adapters or a new head were added, or before unfreezing: an optimizer made before "
               "get_peft_model()?" if ctx.frozen_params else "made from a copy of the model, or another model?")
        return [Fix("optimizer_on_model", "build the optimizer from this model's trainable parameters "
                                          "(torch.optim.X([p for p in model.parameters() if p.requires_grad], ...)) "
                                          f"after the model is complete: it holds none of them ({why})"), *fixes]
    if ctx.accumulating and not left_out:
        return [Fix("zero_grad", "call optimizer.zero_grad() once per step, before backward(): the gradients "
                                 "accumulate across steps" if ctx.optimizer else
                                 "after each update, clear every parameter's gradient (p.grad = None, or "
                                 "model.zero_grad()): the gradients accumulate across steps"), *fixes]
    return list(fixes)


def _module_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _detached_fixes(fixes, finding, ctx):
    """Exact zero gradients in front of layers that get gradients (frozen_layers' zero_prefix): name
    the two layers to look between; the graph is there (reentrant checkpointing gives None, not 0),
    its backward returns zeros."""
    facts = finding.facts if finding.symptom == "frozen_layers" else ctx.facts("frozen_layers")
    nxt, zeros = facts.get("first_with_grad"), facts.get("zero_grad_layers") or []
    if not (facts.get("zero_prefix") and nxt and zeros) or facts.get("cut"):
        return list(fixes)
    last, after = _module_of(zeros[-1]), _module_of(nxt)
    return [Fix("find_cut", f"check what sits between {last} and {after} in forward(): a custom "
                            "torch.autograd.Function whose backward returns zeros (a straight-through estimator "
                            "returning g * 0), a multiplication by 0 or an all-zero mask, a non-differentiable op "
                            "(round, argmax, an int cast)"),
            *(f for f in fixes if f.id not in ("non_reentrant_checkpoint", "drop_unused"))]


def _numerical_fixes(fixes, finding, ctx):
    return [f for f in fixes if (f.id != "check_data_nan" or finding.symptom == "nan_inf"
                                 and not finding.facts.get("float32_overflow"))
            and (f.id != "loss_scaler" or not full_precision(ctx) and not scaler_in_use(ctx))]


def scaler_in_use(ctx) -> bool:
    """A GradScaler stepped the watched optimizer (its loss scale is recorded): "use a loss scaler"
    to a run that uses one (trial 18 U3)."""
    return SYS_LOSS_SCALE in ctx.sig.point_counts or SYS_LOSS_SCALE in ctx.sig.scalars


REDUCED_PRECISION_WORDS = ("fp16", "bf16", "half", "float16", "bfloat16", "autocast", "mixed", "precision")


def full_precision(ctx) -> bool:
    """Nothing in the run points at reduced precision: float32 parameters, no GradScaler step recorded,
    no word of it in the config, and no optimizer watched (a hand-written update, as pytorch/examples'
    word_language_model's ``p.data.add_``: no GradScaler can step it). "In mixed precision use a loss
    scaler" was fix 6 for such an fp32 LSTM LM (trial 18 U8). With an optimizer, autocast leaves no mark
    in the file (float32 weights, a scaler the script did not pass to watch()), so the fix stays."""
    sig = ctx.sig
    dtypes = (sig.meta.get("model") or {}).get("param_dtypes")
    if isinstance(dtypes, dict) and set(dtypes) == {"float64"} and SYS_AMP_SKIPPED not in sig.point_counts:
        return True    # autocast leaves float64 ops alone: an LBFGS float64 model read "use a loss scaler / bf16"
    if sig.meta.get("optimizer") or SYS_AMP_SKIPPED in sig.point_counts:
        return False
    if not isinstance(dtypes, dict) or not dtypes or set(dtypes) - {"float32", "float64"}:
        return False
    config = sig.meta.get("config")
    words = repr(config).lower() if config else ""
    return not (any(w in words for w in REDUCED_PRECISION_WORDS) or "amp" in re.split(r"[^a-z0-9]+", words))


def _label_noise_fixes(fixes, finding, ctx):
    if finding.symptom == "loss_spikes":
        return list(fixes)
    out = [FIX_NOISY_SAMPLES if f.id == "inspect_batches" else f for f in fixes if f.id != "clip_grads"]
    if finding.symptom in ("no_progress", "stuck_at_chance"):
        # a loss at chance: the pairing, not a few bad labels (a robust loss cannot help it)
        return [Fix("check_label_pairs", "print a few training inputs next to their labels: labels shuffled apart "
                                         "from the inputs, a wrong target column or an off-by-one label leave nothing "
                                         "to learn"), FIX_NOISY_SAMPLES]
    return out


CAUSE_CATALOGUE = {
    "lr_too_high": CauseSpec(
        "a step size too large for the loss surface throws the parameters around",
        (Fix("lower_lr", "reduce the learning rate 10x"), FIX_LR_RANGE, Fix("lr_warmup", "add a learning-rate warm-up"),
         FIX_CLIP),
        "re-run with LR/10: the {what} should shrink or vanish", _lr_high_fixes),
    "lr_too_low": CauseSpec(
        "updates are too small to move the loss in the steps given",
        (Fix("raise_lr", "raise the learning rate 10x"), FIX_LR_RANGE,
         Fix("check_lr_schedule", "check the LR schedule: does it decay too early or too far?")),
        "re-run with LR x10: the loss should fall clearly faster", _lr_low_fixes),
    "bad_init": CauseSpec(
        "the initial weights put units in a regime where gradients cannot flow or differ",
        (Fix("proper_init", "use He (Kaiming) init"), Fix("zero_bias", "initialise biases to 0")),
        "re-run with default He/Xavier init: the {what} should not appear", _init_fixes),
    "input_scaling": CauseSpec(
        "inputs far from zero mean/unit scale make the first layer's pre-activations huge",
        (Fix("standardise_inputs", "standardise the inputs (subtract the training-set mean, divide by its std)"),
         Fix("check_preprocessing", "check the preprocessing pipeline for un-scaled or corrupt batches")),
        "re-run with standardised inputs: the {what} should go away", _input_fixes),
    "missing_normalization": CauseSpec(
        "without BatchNorm/LayerNorm activations drift in scale across layers", (FIX_NORM_LAYERS,),
        "add normalization layers and compare: the {what} should shrink"),
    "activation_choice": CauseSpec(
        "the activation function kills or squashes the gradient", (FIX_BOUNDED_TO_RELU, FIX_RELU_TO_LEAKY),
        "swap the activation (e.g. to LeakyReLU/GELU): the {what} should go away", _activation_fixes),
    "insufficient_regularization": CauseSpec(
        "the model fits its training set better and better while generalising worse",
        (Fix("early_stop", "stop early at the best validation step"), Fix("weight_decay", "add weight decay"),
         Fix("dropout_augment", "add dropout or data augmentation"),
         Fix("smaller_model_more_data", "use a smaller model or more data")),
        "re-run with weight decay/dropout: validation loss should stop rising", _regularization_fixes),
    "insufficient_capacity": CauseSpec(
        "the model may be too small to fit the data",
        (Fix("bigger_model", "make the model wider/deeper (look for a too-narrow bottleneck layer)"),
         Fix("train_longer", "train longer")),
        "re-run with a 2x wider model: the loss should drop below the plateau"),
    "clipping_too_tight": CauseSpec(
        "gradient clipping scales nearly every update far down: a max_norm far below the gradients' usual norm "
        "works as a much smaller LR",
        (Fix("raise_clip_norm", "raise clip_grad_norm_'s max_norm to clip only the outliers (e.g. 1.0)"),),
        "re-run with max_norm 1.0: the loss should fall at once", _clip_fixes),
    "weight_decay_too_strong": CauseSpec(
        "weight decay pulls the weights to 0 faster than the gradients move them",
        (Fix("lower_weight_decay", "lower the weight decay (1e-4 to 0.1 is usual)"),
         Fix("decoupled_decay", "use AdamW (decoupled weight decay) instead of Adam's weight_decay: Adam's L2 term "
                                "is scaled by the gradient statistics")),
        "re-run with a 100x smaller weight decay: the weight norms should stop shrinking", _decay_fixes),
    "adam_eps_too_large": CauseSpec(
        "the optimizer's eps dwarfs sqrt(v), the gradients' RMS: Adam's step lr * m / (sqrt(v) + eps) becomes "
        "~lr * m / eps, plain SGD with momentum at a tiny LR",
        (Fix("reset_eps", f"set eps back to {DEFAULT_EPS_TEXT}: it must be negligible against sqrt(v)"),),
        f"re-run with eps={DEFAULT_EPS_TEXT}: the loss should fall at once", _eps_fixes),
    "dropout_too_strong": CauseSpec(
        "a Dropout drops most of its inputs in training, so the network sees too little of each sample to fit "
        "the training data",
        (Fix("lower_dropout", "lower dropout p: 0.1 to 0.5 is usual"),),
        "re-run with dropout p 0.1 to 0.5: the training loss should fall much further", _dropout_fixes),
    "optimizer_setup": CauseSpec(
        "the optimizer may not see all parameters, or its settings stop updates",
        (Fix("check_param_list", "check the optimizer's parameter list (model.parameters() after every layer is "
                                 "built)"),
         Fix("check_step_calls", "check requires_grad flags, per-group LRs and that zero_grad/step are called")),
        "print the optimizer's parameter names next to model.named_parameters(): the missing ones are the frozen "
        "layers", _optimizer_fixes),
    "label_noise": CauseSpec(
        "mislabelled or corrupt samples give large, unfittable losses",
        (FIX_SPIKE_BATCHES, Fix("robust_loss", "use label smoothing or a robust loss"),
         Fix("clip_grads", "clip gradients so single batches cannot derail training")),
        "look at the samples of the worst batches: wrong labels confirm it", _label_noise_fixes),
    "numerical_instability": CauseSpec(
        "an operation overflowed or produced NaN (log(0), division by zero, exp of a large value, fp16 range)",
        (Fix("stable_ops", "use numerically stable ops (log_softmax/cross_entropy instead of log(softmax), add eps "
                           "to divisions and logs, no exp of unbounded values)"), Fix("clip_grads", "clip gradients"),
         Fix("loss_scaler", "in mixed precision use a loss scaler / bf16"),
         Fix("check_data_nan", "check the data for NaN/Inf")),
        "re-run with torch.autograd.set_detect_anomaly(True) to find the op producing NaN", _numerical_fixes),
    "depth_without_skip_connections": CauseSpec(
        "a deep plain chain multiplies gradients layer after layer",
        (Fix("skip_connections", "add residual (skip) connections"), FIX_NORM_LAYERS,
         Fix("fewer_layers", "use fewer layers")),
        "add skip connections: first-layer gradients should grow by orders of magnitude"),
    "loss_setup": CauseSpec(
        "the loss or the model's output is wired wrong: a degenerate target, or an output the loss cannot use",
        (Fix("check_loss_output", "check the loss against the model's output: cross_entropy needs one logit per "
                                  "class (over a single output it is 0 whatever the input), and no softmax/sigmoid "
                                  "before a loss that applies it itself"),
         Fix("check_targets", "check the targets: a constant or wrongly shaped target gives a constant loss")),
        "print the model's output shape and a few targets next to the loss value at step 0"),
    "loss_summed": CauseSpec(
        "the loss is summed over the batch, not averaged: with SGD every step is batch-size times the one the LR "
        "was tuned for",
        (Fix("mean_reduction", "average the loss over the batch: reduction='mean' (the default), or divide the sum "
                               "by the batch size; or divide the LR by the batch size"),),
        "re-run with reduction='mean': the first loss should be near ln(C) and the loss fall as with the usual recipe"),
    "logged_value_stale": CauseSpec(
        "the value logged as the loss is the same number at every step: a training loss moves with every batch "
        "and every update, so what is logged is not this step's loss (computed once before the loop, a constant, "
        "or a variable the loop never updates)",
        (Fix("log_step_loss", "log the loss computed in this step, inside the loop: loss = criterion(model(x), y) "
                              "... rec.log({'train/loss': loss})"),),
        "print the logged value next to a freshly computed loss for two batches: they should differ"),
    "graph_detached": CauseSpec(
        "the forward cuts these layers off from the loss: a .detach()/.data/.item() on the way, a torch.no_grad() "
        "block, or reentrant checkpointing (use_reentrant=True) of a segment whose inputs do not require grad",
        (Fix("find_detach", "search the forward between these layers and the loss for .detach(), .data, "
                            ".item()/.numpy()/.tolist() and torch.no_grad()/inference_mode() blocks"),
         Fix("non_reentrant_checkpoint", "checkpoint with torch.utils.checkpoint.checkpoint(..., use_reentrant=False) "
                                         "(the reentrant form gives no gradient to a segment whose inputs do not "
                                         "require grad)"),
         Fix("drop_unused", "if the layers are unused on purpose, set requires_grad=False on them or leave them "
                            "out of the optimizer")),
        "after loss.backward(), print [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]: "
        "the layers cut off are listed", _detached_fixes),
    "train_mode_off": CauseSpec(
        "the model was left in eval mode: model.eval() for validation and no model.train() after it",
        (Fix("call_train", "call model.train() at the start of every training epoch (after each validation)"),),
        "add model.train() before the training loop's forward: dropout and batch norm should act again"),
    "train_mode_at_validation": CauseSpec(
        "the model stays in train mode for validation: model.eval() is not called before the validation loop",
        (Fix("call_eval", "call model.eval() before the validation loop (with torch.no_grad()) and model.train() "
                          "after it"),),
        "add model.eval() before validating: the validation loss should fall and stop jittering"),
    "generator_helps_discriminator": CauseSpec(
        "the generator's step trains it to be caught: its loss scores D(G(z)) against the fake label, so G "
        "learns to help D instead of fooling it, and both losses fall together",
        (Fix("generator_real_labels", "in the generator's step, score its fakes against the real label: "
                                      "label.fill_(real_label); errG = criterion(netD(fake), label) (pytorch/examples' "
                                      "dcgan), i.e. minimise -log D(G(z))"),
         Fix("generator_step_params", "check that the generator's optimizer steps the generator's parameters and "
                                      "the discriminator's step uses fake.detach()")),
        "re-run with the real label in the generator's step: Loss_G should rise well above 0 while Loss_D stays up"),
    "discriminator_wins": CauseSpec(
        "the discriminator wins the game: it tells real from fake with certainty, its output sits at 0 and 1 and the "
        "generator's gradient through it vanishes (a D learning rate far above G's, too many D steps, a D much "
        "stronger than G)",
        (Fix("balance_gan_lr", "lower the discriminator's learning rate to the generator's or below (DCGAN: 2e-4 for "
                               "both; a two time-scale update rule sets them apart by a few x, not 100x)"),
         Fix("fewer_d_steps", "take fewer discriminator steps per generator step (1:1 for the DCGAN loss)"),
         Fix("label_smoothing", "smooth the discriminator's real labels (one-sided label smoothing: 0.9 instead of 1)"),
         Fix("instance_noise", "add instance noise: small Gaussian noise on the discriminator's real and fake inputs, "
                               "annealed to 0")),
        "re-run with the discriminator's LR at the generator's: D's output should stay off 0 and 1 and the "
        "generator's loss stop climbing"),
    "sparse_reward": CauseSpec(
        "the agent never reaches anything that pays differently: a reward too sparse for its exploration (a goal "
        "random actions never reach within an episode) or an environment whose reward never changes",
        (Fix("reward_shaping", "shape the reward: give partial credit on the way to the goal"),
         Fix("more_exploration", "explore more: an entropy bonus, a higher epsilon or sampling temperature"),
         Fix("curriculum", "use a curriculum: start with easier episodes and make them harder as the return rises"),
         Fix("check_env_reward", "check the environment's reward: print the rewards of a few random episodes")),
        "run a few hand-written episodes that reach the goal: their return should differ; then add a shaped reward "
        "or an entropy bonus: the return should start to move"),
    "grads_cleared_before_step": CauseSpec(
        "the gradients are cleared between loss.backward() and optimizer.step() (optimizer.zero_grad() or "
        "model.zero_grad() in between, or grads set to None): every step finds no gradient and updates nothing",
        (Fix("zero_grad_first", "call optimizer.zero_grad() at the start of the iteration (before the forward) or "
                                "right after optimizer.step(), never between loss.backward() and optimizer.step(); "
                                "the order: zero_grad(), forward, loss, loss.backward(), optimizer.step()"),),
        "move zero_grad() before the forward: the {what} should go and the weights should move"),
    "no_backward": CauseSpec(
        "no parameter ever received a gradient while the optimizer stepped: loss.backward() is never called, or "
        "is called on a loss that does not come from this model's parameters",
        (Fix("call_backward", "call loss.backward() after the loss and before optimizer.step() in every iteration"),
         Fix("loss_from_model", "check that the loss is computed from this model's output (not a copy's, not under "
                                "torch.no_grad())")),
        "add loss.backward() before optimizer.step(): the gradient norm should appear and the {what} go"),
    "no_optimizer_step": CauseSpec(
        "the watched optimizer never stepped while the loss was logged: optimizer.step() is not called (or another "
        "optimizer object than the one passed to watch() steps)",
        (Fix("call_step", "call optimizer.step() after loss.backward() in every iteration (with a GradScaler: "
                          "scaler.step(optimizer))"),
         Fix("watch_stepping_optimizer", "pass watch() the optimizer the loop steps")),
        "add optimizer.step() after loss.backward(): the weights should move and the {what} go"),
    "unshuffled_data": CauseSpec(
        "the training batches come in the same order every epoch (DataLoader(shuffle=False), a sampler or "
        "an index list made once, DistributedSampler without set_epoch): a stored order that groups the data "
        "(ImageFolder lists its files class by class; a table sorted by label, date or source) gives batches "
        "of one group, and the model is pulled towards each group in turn",
        (Fix("shuffle_each_epoch", "shuffle the training set every epoch: DataLoader(train_set, shuffle=True), or "
                                   "a new torch.randperm order at the start of each epoch"),
         Fix("distributed_sampler", "with DistributedSampler(shuffle=True), call sampler.set_epoch(epoch) at the "
                                    "start of every epoch (without it every epoch repeats the first one's order)"),
         Fix("check_sort_order", "check whether the data set is stored sorted (print the labels of the first "
                                 "batches: one class per batch means it is)")),
        "re-run with shuffle=True: the {what} should disappear, and the validation loss should not be worse"),
    "mixed_batch_loss": CauseSpec(
        "the training loss is measured on mixed or heavily augmented batches (mixup, CutMix, strong "
        "augmentation): each batch's loss follows how it was mixed, not what the model has learned, while the "
        "validation loss on clean data shows the progress",
        (Fix("judge_on_validation", "nothing to fix if the training batches are mixed or heavily augmented: judge "
                                    "progress on the validation loss; otherwise log the training loss on clean "
                                    "batches too: if that curve shows the same, look into the other causes"),),
        "log the loss on a fixed clean training batch every few hundred steps: it should fall like the validation "
        "loss while the {what} of the mixed batches' loss stays"),
    "low_precision_weights": CauseSpec(
        "the weights are stored in bfloat16/float16 with no float32 master copy: a step below half an element's "
        "precision leaves it unchanged",
        (Fix("fp32_master_weights", "keep the weights in float32 (drop model.to(torch.bfloat16) / .half()) and run "
                                    "the forward under torch.autocast(device_type, dtype=torch.bfloat16): the "
                                    "optimizer then steps float32 weights while the matmuls still run in 16 bits"),
         Fix("rounding_optimizer", "if the memory is needed, use an optimizer that keeps small updates: stochastic "
                                   "rounding (torchao's AdamW(bf16_stochastic_round=True)) or Kahan summation "
                                   "(optimi's kahan_sum=True)")),
        "re-run with the model in float32 under autocast: the loss should fall clearly faster"),
    "loss_sign": CauseSpec(
        "the loss has no minimum: a term with the wrong sign (a KL or penalty subtracted instead of added), a "
        "log-likelihood maximised instead of minimised, or a learned scale whose -log term nothing bounds",
        (Fix("check_loss_signs", "check the sign of every loss term: the KL term is added (loss = recon + KLD, with "
                                 "KLD = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) >= 0), a log-likelihood is "
                                 "negated before minimising"),
         Fix("check_loss_floor", "print each term at step 0 and a few steps later: every term of a loss meant to be "
                                 ">= 0 should stay >= 0")),
        "fix the sign and re-run: the loss should settle at a level near or above 0 instead of running away"),
    "nll_on_logits": CauseSpec(
        "nll_loss/NLLLoss fed logits instead of log_softmax outputs: the loss is minus the target's raw score, "
        "which grows without bound",
        (Fix("log_softmax_before_nll", "apply F.log_softmax(output, dim=1) before F.nll_loss / nn.NLLLoss (or use "
                                       "F.cross_entropy on the logits, which does both)"),),
        "add the log_softmax and re-run: the loss should start near ln C and stay above 0"),
    "target_scaling": CauseSpec(
        "the regression targets are far from unit scale (prices in dollars, counts, ages in years): the untrained "
        "model's outputs are ~0.1, so the first errors, gradients and steps are all dominated by the target's size",
        (Fix("standardise_targets", "standardise the targets (subtract the training set's mean, divide by its std) "
                                    "and invert that at prediction time; for prices or counts, predict log(target)"),),
        "re-run with standardised targets: the loss should start near 1 and the {what} should go away"),
    "loss_terms_unbalanced": CauseSpec(
        "the loss terms are on different scales: an unstandardised regression target (an age in years, a price) "
        "or a sum-reduced term makes one term orders of magnitude larger, so the shared weights follow its "
        "gradient and the other task is not learned",
        (Fix("standardise_target", "standardise the regression target (subtract the training set's mean, divide by "
                                   "its std; undo it at prediction), or normalise the inputs of that head's loss"),
         Fix("weight_loss_terms", "weight the terms so each starts near the same size (divide each by its value "
                                  "at the start, or learn the weights: uncertainty weighting, GradNorm)"),
         Fix("same_reduction", "give every term the same reduction (all 'mean'): a 'sum' term is batch-size "
                               "times larger")),
        "re-run with the target standardised: the small term should fall and its task's validation metric rise"),
    # ---- across the ranks of a distributed run (symptoms/straggler_rank.py, rank_*.py)
    "graph_retained": CauseSpec(
        "the autograd graph is kept across iterations: a hidden state carried into the next batch without "
        ".detach() (kept alive by retain_graph=True), or a tensor with grad accumulated over steps "
        "(total_loss += loss), so each backward runs through every earlier iteration",
        (Fix("detach_state", "detach the recurrent state between batches (hidden = hidden.detach(), pytorch/examples' "
                             "repackage_hidden) and drop retain_graph=True"),
         Fix("accumulate_numbers", "accumulate running totals as numbers (total += loss.item()), never the loss "
                                   "tensor itself")),
        "detach the state between batches and re-run: every step should take about the same time"),
    "slow_data_loading": CauseSpec(
        "the rank waits for its next batch: too few loader workers, slow storage, a heavier shard",
        (Fix("loader_workers", "raise DataLoader num_workers / pin_memory / prefetch_factor for that rank's node"),
         Fix("even_shards", "check that every rank's shard has the same size and cost per sample")),
        "time the data loader alone on that rank's node: it should be slower than on the others"),
    "slow_node": CauseSpec(
        "the rank's device or node is slower: a throttled or shared GPU, a busy host, a slower link",
        (Fix("check_node", "check that rank's node (nvidia-smi clocks and temperature, other jobs on it)"),
         Fix("exclude_node", "exclude the node and re-run")),
        "move that rank to another node: the {what} should move with the node"),
    "rank_local_data": CauseSpec(
        "a batch of this rank's data shard holds NaN/Inf or extreme values",
        (Fix("inspect_rank_batch", "inspect the batch that rank read at that step (DistributedSampler: sample "
                                   "indices rank, rank + world_size, ...)"),
         Fix("check_data_nan", "check the data for NaN/Inf")),
        "re-run skipping the batch that rank read at that step: the {what} should not appear"),
    "inconsistent_data_sharding": CauseSpec(
        "the ranks read differently distributed data: a shard of another dataset, a sampler without "
        "set_epoch, duplicated or unshuffled shards",
        (Fix("distributed_sampler", "use DistributedSampler(shuffle=True) and call sampler.set_epoch(epoch) every "
                                    "epoch"),
         Fix("same_dataset", "check that every rank reads a shard of the same dataset")),
        "log each rank's first batch indices and labels: the shards should differ in content"),
    "unsynchronized_ranks": CauseSpec(
        "the ranks train different models: different seeds or initialisation, parameters not broadcast, "
        "gradients not averaged",
        (Fix("seed_ranks", "seed every rank alike before building the model (torch.manual_seed)"),
         Fix("wrap_ddp", "wrap the model in DDP/FSDP so parameters are broadcast and gradients averaged")),
        "compare a parameter's norm on every rank after step 0: they should be equal"),
}
CAUSE_IDS = tuple(CAUSE_CATALOGUE)


# ---------------------------------------------------------------- evidence shared by symptoms
def lr_from_update_ratio(s: Scores, ctx: Context, *, boost_high: bool = False, boost_low: bool = False) -> None:
    """cs231n's update/weight ratio: far above the usual (~1e-3 for SGD, ~1e-2 for an Adam-family
    step of ~lr per element: update_scale) -> LR too high, far below -> too low.

    Tiny updates after ReLUs died in training are the dead units' doing, not a small LR."""
    died = "dead_units" in ctx.found and not ctx.facts("dead_units").get("dead_from_start")
    low = ctx.ratio_low and not died
    if ctx.ratio_high and boost_high:
        s.boost("lr_too_high", 0.9, too_large_text(ctx))
    if low and boost_low:
        s.boost("lr_too_low", 0.9, f"update/weight ratio {ctx.update_ratio_max:.2g} (largest layer) is far below "
                                   f"{usual_level(ctx.optimizer)}")
    if low:
        s.damp("lr_too_high", 0.3)
    if ctx.ratio_high:
        s.damp("lr_too_low", 0.3)


MOSTLY_FROZEN = 0.5   # share of the parameters' elements frozen at watch()


SIGMOID_OFF_CENTRE = 0.15   # a Sigmoid output's late mean this far from 0.5 (siamese, double sigmoid: 0.12-0.2)


def _late_output_mean(ctx: Context) -> float | None:
    """Median over the last quarter of the records of the output activation's mean."""
    act = ctx.sig.layer.get("act_mean")
    if act is None or not len(act) or ctx.output_module not in act.layers:
        return None
    n = len(act)
    col = act.read(n - max(1, n // 4), n)[:, list(act.layers).index(ctx.output_module)].astype(np.float64)
    col = col[np.isfinite(col)]
    return float(np.median(col)) if col.size else None


def squashed_output_at_chance(s: Scores, ctx: Context) -> None:
    """A loss at chance while the weights move: probabilities handed to a loss that squashes them
    again. A model ending in nn.Softmax always does that to cross_entropy; one ending in
    nn.Sigmoid does it to BCEWithLogitsLoss (siamese_network so edited sat at 0.68 of ln 2 = 0.69,
    "raise the LR 10x" was fix 1), not to BCELoss, so that is a shared suspicion. A softmax in
    forward() or the loop is invisible, but under SGD the second squashing shrinks every step ~C
    times and the loss creeps off chance (an SGD ResNet: 2.30 -> 2.18 in 300 steps); Adam's steps
    do not shrink, so it reaches ``softmax_floor`` instead."""
    act = ctx.output_activation
    if act == "Softmax":
        s.boost("loss_setup", 0.85, "the model ends in Softmax: cross_entropy applies log_softmax itself, so the "
                                    "scores are squashed twice and the gradient through both is tiny")
    elif act == "Sigmoid":
        mean = _late_output_mean(ctx)
        if mean is None or abs(mean - 0.5) < SIGMOID_OFF_CENTRE:
            return    # outputs near 0.5 at a loss of ln 2: what BCELoss gives a model that learned nothing
        s.boost("loss_setup", 0.8, f"the model ends in Sigmoid, whose outputs average {mean:.2f} while the loss stays "
                                   "at ln 2: BCELoss on outputs that far from 0.5 would be well above ln 2, so the loss "
                                   "is not reading them as probabilities: BCEWithLogitsLoss applies the sigmoid again")
    elif ctx.optimizer and not scale_free(ctx.optimizer):
        s.boost("loss_setup", 0.5, f"under {ctx.optimizer} a softmax before cross_entropy (F.softmax / .softmax(1) in "
                                   "forward() or the loop) shrinks every step ~C times: the loss creeps off chance")
    else:
        return
    s.damp("lr_too_low", 0.5)


def mostly_frozen(s: Scores, ctx: Context) -> bool:
    """Most of the model was frozen at watch(): only the rest can lower the loss. makemore with its
    transformer blocks frozen by mistake (97.7 %) was told "make the model wider/deeper"; a tiny
    BERT with its encoder frozen, "raise the LR 10x"."""
    frozen = ctx.frozen_share
    if frozen < MOSTLY_FROZEN:
        return False
    s.boost("optimizer_setup", 0.6, f"{frozen:.1%} of the parameters were frozen at watch() (requires_grad=False): "
                                    "only the rest can lower the loss; intended?")
    return True


def unfreeze_fix(ctx: Context) -> list[Fix]:
    if ctx.frozen_share < MOSTLY_FROZEN:
        return []
    return [Fix("unfreeze", "unless the freeze is intended (a fine-tune), set requires_grad=True on the frozen "
                            "parameters (listed under 'frozen at watch()') before building the optimizer")]


def inputs_unscaled(s: Scores, ctx: Context, value: float = 0.6) -> None:
    if "unnormalized_inputs" in ctx.found:
        s.boost("input_scaling", value, "the inputs are not standardised (see unnormalized_inputs)")


def weights_symmetric(s: Scores, ctx: Context) -> None:
    if "symmetric_weights" in ctx.found:
        s.boost("bad_init", 0.9, "units of a layer are identical: a constant/zero initialisation never breaks symmetry")


def loss_setup_evidence(s: Scores, ctx: Context) -> bool:
    """A loss exactly constant from the first step with zero gradients: the loss or output is wired wrong."""
    f = ctx.found.get("no_progress")
    if f is None or not (ctx.zero_gradients or f.facts.get("constant_loss")
                         and ctx.facts("frozen_layers").get("all_zero_grad")):
        return False
    single = ctx.n_outputs == 1 and ctx.output_activation in ("Softmax", "LogSoftmax", "Softmin")
    out = ctx.output_activation if single else ""
    s.boost("loss_setup", 0.95, "every gradient is exactly 0 from the first step"
                                + (" and the loss is exactly constant" if f.facts.get("constant_loss") else "")
                                + ": the loss does not depend on the weights, so the loss/output pairing is degenerate"
                                + (f" ({out} over a single output unit)" if out else ""))
    if out:
        s.boost("activation_choice", 0.9, f"a {out} over a single output unit is constant whatever the input: no "
                                          "gradient flows back through it")
    for c in ("lr_too_low", "bad_init", "input_scaling", "optimizer_setup"):
        s.damp(c, 0.2)
    return True


def stale_logged_loss(s: Scores, finding: Finding, ctx: Context) -> None:
    """A loss exactly constant, bit for bit, while the gradients are not all 0: with the weights
    seen moving it cannot be this step's loss; without weight records (a log-only run) a fixed
    batch at LR 0 could give it too, so the LR keeps its place beside it."""
    if not finding.facts.get("constant_loss") or ctx.zero_gradients:
        return
    if ctx.weight_change is not None and not ctx.weights_static:
        s.boost("logged_value_stale", 0.95, f"the weights moved {ctx.weight_change:.2%} over the run and the "
                                            "gradients are not 0, yet the logged loss never changed by a bit")
        for c in ("lr_too_low", "bad_init", "input_scaling", "optimizer_setup", "activation_choice"):
            s.damp(c, 0.2)
    elif ctx.weight_change is None:
        s.boost("logged_value_stale", 0.6, "the logged loss is the same number at every step, bit for bit: "
                                           "different batches give different losses even when nothing learns")


LOGIT_SCALE = 20.0    # the untrained model's output std above which the init is far too large


def init_too_large(s: Scores, finding: Finding, ctx: Context) -> None:
    """After the symptom's own adjustment: outputs that were huge before any update (a ReLU MLP
    initialised N(0, 1): std 16,000 at step 0) explain the blow-up that follows better than the
    LR (the same net at its default init trains at that LR), unless the inputs are unscaled."""
    if not initial_outputs_huge(ctx) or "unnormalized_inputs" in ctx.found \
            or finding.symptom in ("unnormalized_inputs", "symmetric_weights") \
            or ctx.facts("nan_inf").get("first_record"):   # an overflow in the first forward (stacked exp)
        return
    first = ctx.initial_output
    s.boost("bad_init", 0.95, f"the untrained model's outputs ({ctx.label(first[0])}) had std {first[1]:.3g} at the "
                              f"first record, before any update (healthy inits: ~0.05-1.2; threshold {LOGIT_SCALE:g}): "
                              "the initial weights are far too large")
    s.damp("lr_too_high", 0.5)


SMALL_INIT_SYMPTOMS = {"vanishing_gradients", "no_progress", "frozen_layers", "dead_units", "early_plateau"}


def init_too_small(ctx) -> bool:
    """Weights initialised so small that each layer shrinks the signal, with gradients that vanish."""
    return ctx.init_gain is not None and ctx.init_gain < SMALL_INIT and "vanishing_gradients" in ctx.found


def small_init(s: Scores, finding: Finding, ctx: Context) -> None:
    """After the symptom's own adjustment: ten tanh layers initialised N(0, 0.01) were told "swap
    tanh for ReLU", which vanished the same way (9e-12x); the init was the cause."""
    if finding.symptom not in SMALL_INIT_SYMPTOMS or not init_too_small(ctx):
        return
    s.boost("bad_init", 0.9, f"the weights were initialised at a gain of {ctx.init_gain:.2g} (RMS x sqrt(fan_in); "
                             "PyTorch's default 0.58, He 1.41): every layer shrinks the signal and its gradient")
    s.damp("activation_choice", 0.5)
    s.damp("depth_without_skip_connections", 0.6)
    s.damp("lr_too_low", 0.5)     # the updates are tiny because the gradients vanish, not the LR


def initial_outputs_huge(ctx) -> bool:
    first = ctx.initial_output
    return first is not None and first[1] >= LOGIT_SCALE


def evidence_for_every_symptom(s: Scores, finding: Finding, ctx: Context) -> None:
    """Facts that bear on every symptom's causes: the update/weight ratio and the input scale."""
    lr_from_update_ratio(s, ctx)
    if finding.symptom != "unnormalized_inputs":
        inputs_unscaled(s, ctx)


ADAM_LR_LARGE = 1e-2   # an Adam-family LR this large is large for any model, whatever its init


def lr_scale_phrase(ctx: Context, peak_lr: float | None = None, lr_over_rms: float | None = None) -> str:
    """"an LR of 0.09 is 0.976x their initial scale": weight_growth's title, and its finding's
    facts quoted by the findings it explains."""
    if peak_lr is None:
        peak_lr = float(np.max(ctx.lr_values))
    if lr_over_rms is None:
        lr_over_rms = ctx.facts("weight_growth")["lr_over_rms"]
    return f"an LR of {peak_lr:.3g} is {fmt(lr_over_rms)}x their initial scale"


def lr_shown_by_weight_growth(s: Scores, finding: Finding, ctx: Context) -> None:
    """An Adam LR of 1e-2 or more that grew the weights (a weight_growth warning) explains the other
    findings of the run too: a tiny BERT at 30x its LR (0.045, 2.25x the weights' scale) had its flat
    loss blamed on "bad init 90%" (BERT's 0.02-std init) and its vanishing gradients on tanh (trial 15)."""
    growth = ctx.found.get("weight_growth")
    if growth is None or growth.severity == "info" or finding.symptom == "weight_growth" \
            or ctx.lr_values is None or float(np.max(ctx.lr_values)) < ADAM_LR_LARGE:
        return
    s.boost("lr_too_high", 0.9, f"the weights grew early under this LR ({lr_scale_phrase(ctx)}; see "
                                "weight_growth): steps that size explain this too")
    for cause, factor in (("bad_init", 0.4), ("activation_choice", 0.4), ("lr_too_low", 0.3)):
        s.damp(cause, factor)


HUGE_FIRST_LOSS = 1e4     # a first loss this large with no chance level to explain it ...
TARGET_OVER_OUTPUT = 100  # ... whose square root is this many times the untrained outputs' std


def _reached_chance_scale(v, ctx: Context) -> bool:
    """The loss came down to a classifier's cross-entropy scale at some point: a classifier whose
    first logged loss was taken after a blow-up (Lightning at LR 10: 2e5, then ln(4) territory)."""
    c = ctx.n_outputs
    return bool(c and c >= 2 and float(np.min(v)) <= 1.5 * math.log(c))


def targets_unscaled(s: Scores, ctx: Context) -> None:
    """A regression whose first loss is huge next to what the untrained outputs can explain: an MSE
    of 6.9e10 (prices in dollars) against outputs of std 0.064 read "exploding gradients, bad init
    80%, use He init" (trial 15, F20); the growing gradients are the output layer reaching for the
    targets' scale. Not for a classifier whose first loss sits near ln(C)."""
    loss, out = ctx.sig.train_loss, ctx.initial_output
    if loss is None or out is None or out[1] <= 0:
        return
    v = np.asarray(loss[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return
    first = float(v[0])    # before any update (a loss that blew up in its first steps is no target scale)
    # a regression head, not an image (style transfer's weighted perceptual loss starts at 1e10 by design)
    linear = any(m.name == out[0] and m.type == "Linear" for m in ctx.sig.modules)
    # a sigmoid/tanh output cannot reach unit-scale targets either: activation_choice names that one
    if not linear or ctx.output_activation or first < HUGE_FIRST_LOSS or ctx.chance_loss(first) is not None \
            or math.sqrt(first) < TARGET_OVER_OUTPUT * out[1] or _reached_chance_scale(v, ctx):
        return
    s.boost("target_scaling", 0.5 if ctx.ratio_high else 0.7, f"the first loss {first:.3g} is the square of errors of ~{math.sqrt(first):.3g}, while "
                                   f"the untrained model's outputs ({out[0]}) have a std of {out[1]:.2g}: the targets "
                                   f"are ~{math.sqrt(first) / out[1]:.2g}x the outputs' scale")
    s.damp("bad_init", 0.3)


def loss_runs_away(s: Scores, finding: Finding, ctx: Context) -> None:
    """A loss falling without bound drives the gradients up and the curve around: exploding
    gradients read "bad init 80%" and the wobbles "label noise" on a VAE with its KL sign flipped."""
    runaway = ctx.found.get("loss_unbounded")
    if runaway is None or finding.symptom == "loss_unbounded":
        return
    named = "nll_on_logits" if runaway.facts.get("nll_on_logits") else "loss_sign"   # loss_unbounded's reading
    s.boost(named, 0.95, f"the loss fell without bound (from {fmt(runaway.facts['first'])} to "
                         f"{fmt(runaway.facts['lowest'])}): the objective has no minimum, so the weights and "
                         "gradients grow to lower it further")
    for cause in ("bad_init", "label_noise", "activation_choice"):
        s.damp(cause, 0.3)


def gradients_accumulate(s: Scores, finding: Finding, ctx: Context) -> None:
    """After the symptom's own adjustment: gradients that accumulate explain the large updates too."""
    acc = ctx.grads_accumulate
    if ctx.gradients_carried and finding.symptom in GRADIENT_DRIVEN:
        c = ctx.grads_carried
        s.boost("optimizer_setup", 0.97, f"measured: {c['carried']} of {c['updates']} updates used a gradient that "
                                         "still held the previous update's (never reset to None or zero)")
        s.damp("lr_too_high", 0.5)
        return
    if acc and finding.symptom in GRADIENT_DRIVEN:
        s.boost("optimizer_setup", 0.95, f"the gradient norm grows {acc['shape']} ({acc['early']:.3g} -> "
                                         f"{acc['late']:.3g}): gradients accumulate across steps; "
                                         + ("the optimizer holds none of the model's trainable parameters, so its "
                                            "zero_grad() never clears them" if holds_none(ctx) else
                                            "is optimizer.zero_grad() called every step?"))
        s.damp("lr_too_high", 0.5)


def holds_none(ctx) -> bool:
    """The watched optimizer holds none of the model's trainable parameters (built on a copy of
    the model, or on another one): DeepDiagnosis' "unchanged weight" case."""
    model = {p.name for p in ctx.sig.params if not p.name.startswith("optimizer.")} - (ctx.frozen_params or set())
    return bool(model) and bool(ctx.unoptimized_params) and model <= set(ctx.unoptimized_params)


# Symptoms that accumulating gradients (a missing zero_grad) produce.
GRADIENT_DRIVEN = {"gradients_not_cleared", "nan_inf", "divergence", "loss_oscillation", "loss_spikes", "no_progress", "early_plateau",
                   "exploding_gradients", "dead_units", "slow_convergence"}


def steps_of_a_summed_loss(s: Scores, finding: Finding, ctx: Context) -> None:
    """A loss summed over the batch under SGD (loss_summed) makes every step batch-size times the
    one the LR was tuned for: that, not the LR as such, explains what large steps did (the summed
    ResNet's ReLUs died, read "lr too high" under "average the loss over the batch")."""
    f = ctx.found.get("loss_summed")
    if f is None or finding.symptom not in GRADIENT_DRIVEN | {"weight_growth", "loss_blowup"}:
        return
    steps = f.facts.get("steps") or f"every step is ~{f.facts['batch_size']:.0f}x the one the LR was tuned for"
    s.boost("loss_summed", max(s.get("lr_too_high"), 0.6) + 0.05,
            f"the loss is summed over the batch (see loss_summed): {steps}")   # facts["steps"]: clipped to max_norm


def lr_consistency(s: Scores, ctx: Context) -> None:
    """The LR cannot be both too high and too low: strong evidence for one discounts the other,
    unless the update/weight ratio itself backs the weaker one."""
    if s.get("lr_too_high") >= 0.6 and "lr_too_low" in s.score and not ctx.ratio_low:
        s.damp("lr_too_low", 0.3 if s.get("lr_too_high") >= 0.8 else 0.5)
    elif s.get("lr_too_low") >= 0.6 and "lr_too_high" in s.score and not ctx.ratio_high:
        s.damp("lr_too_high", 0.3 if s.get("lr_too_low") >= 0.8 else 0.5)
    # Both listed only when each has evidence of its own (a reason beyond its prior).
    if "lr_too_high" in s.score and "lr_too_low" in s.score:
        high, low = "lr_too_high" in s.why, "lr_too_low" in s.why
        if not (high and low):
            if high != low:
                drop = "lr_too_low" if high else "lr_too_high"
            else:
                drop = "lr_too_low" if s.get("lr_too_high") >= s.get("lr_too_low") else "lr_too_high"
            del s.score[drop]


# ---------------------------------------------------------------- ranking, fixes, confirm
def rank_causes(finding: Finding, spec, ctx: Context) -> list[Cause]:
    s = Scores(dict(spec.priors))
    if spec.scope == "run":       # the LR and input scale say nothing about one rank against the others
        evidence_for_every_symptom(s, finding, ctx)
    spec.adjust(s, finding, ctx)
    if spec.scope == "run":
        init_too_large(s, finding, ctx)
        small_init(s, finding, ctx)
        # after the symptom's own adjustment: these explain what it blamed on the init or the labels
        loss_runs_away(s, finding, ctx)
        targets_unscaled(s, ctx)
        lr_shown_by_weight_growth(s, finding, ctx)
        steps_of_a_summed_loss(s, finding, ctx)
        inputs_far_off(s, finding, ctx)     # after the symptom's own input-scaling boost, whose reason it replaces
    gradients_accumulate(s, finding, ctx)
    lr_consistency(s, ctx)
    if every_lr_zero(ctx.sig):     # an LR of exactly 0 is the setup's error: "raise it 10x" is still 0
        s.score.pop("lr_too_low", None)
    ranked = sorted(s.score.items(), key=lambda kv: -kv[1])
    return [Cause(id=c, confidence=round(min(1.0, v), 2), why=s.why.get(c, CAUSE_CATALOGUE[c].why))
            for c, v in ranked]


def cause_fixes(cause: str, finding: Finding, ctx: Context) -> list[Fix]:
    """The fixes of ``cause`` that apply to this finding and this model.

    Advice that cannot apply is left out: replacing sigmoid/tanh in a model without them,
    LeakyReLU against dying units when no unit died, an LR-schedule check for a constant LR,
    "check the data for NaN/Inf" when nothing was non-finite, spike batches without spikes."""
    spec = CAUSE_CATALOGUE[cause]
    return spec.select(spec.fixes, finding, ctx)


def fixes_for(finding: Finding, spec, ctx: Context) -> list[Fix]:
    out, seen = [], set()
    candidates = list(spec.fixes(finding, ctx))
    top = finding.causes[0].confidence if finding.causes else 0.0
    for c in finding.causes:       # the likely causes' fixes: not those of a cause 4x less likely than the first
        if c.confidence >= max(0.15, top / 4):
            candidates += cause_fixes(c.id, finding, ctx)
    for fix in candidates:
        if fix.id not in seen:
            seen.add(fix.id)
            out.append(fix)
    out.sort(key=lambda f: f.id not in UNDO_FIRST)   # a wiring mistake or wrong setting of this run: undo it first
    if ctx.clips:     # "clip gradients (e.g. at 1.0)" to a run that clips at 1.0 (nanoGPT's grad_clip)
        out = [f for f in out if f.id != "clip_grads"]
    return out


def attach(finding: Finding, ctx: Context, spec=None) -> Finding:
    """Rank ``finding``'s causes and pick its fixes and confirming experiment (``spec``: its symptom's spec)."""
    if spec is None:
        from .registry import SPECS
        spec = SPECS[finding.symptom]
    finding.causes = rank_causes(finding, spec, ctx)
    finding.fixes = fixes_for(finding, spec, ctx)
    if finding.causes:
        finding.confirm = CAUSE_CATALOGUE[finding.causes[0].id].confirm.format(what=spec.word)
        lead = finding.fixes[0].id if finding.fixes else ""
        if lead in FIRST_FIX_CONFIRMS:     # a specific first fix: the experiment is that fix
            finding.confirm = FIRST_FIX_CONFIRMS[lead](finding, ctx).format(what=spec.word)
    return finding


# Fixes that undo a mistake read off this run (an output Softmax, an eps 1e8x its default, a Dropout
# dropping ~90 %): listed before any generic advice (the symptom's own "train longer" included).
UNDO_FIRST = {"output_activation", "reset_eps", "lower_dropout"}


# The experiment that confirms a diagnosis whose first fix is specific to this run.
FIRST_FIX_CONFIRMS = {
    "contrastive_temperature": lambda f, ctx: "re-run with the temperature at 0.1: the loss should fall well below "
                                              f"its start, ln({f.facts['contrastive']['k']}) = "
                                              f"{f.facts['contrastive']['level']:.3g}",
    "check_lr_schedule": lambda f, ctx: "plot sys/lr against the step, fix the schedule and re-run: the {what} "
                                        "should not appear",
    "output_activation": lambda f, ctx: "remove the output activation and re-run: the {what} should go away",
    "zero_lr_group": lambda f, ctx: "print [g['lr'] for g in optimizer.param_groups] at a few steps, give the group "
                                    "an LR above 0 and re-run: its weights should move and the {what} go",
    "find_cut": lambda f, ctx: "after loss.backward(), print p.grad.norm() for the parameters of "
                               f"{_module_of((f.facts.get('zero_grad_layers') or ['?'])[-1])} and "
                               f"{_module_of(f.facts.get('first_with_grad') or '?')}: 0 before the cut, non-zero after "
                               "it; the {what} should go once the backward there passes the gradient on",
    "zero_grad": lambda f, ctx: ("call optimizer.zero_grad() before each backward()" if ctx.optimizer else
                                 "clear the gradients after each update") + " and re-run: the gradient norm "
                                "should stop growing with the step",
}


def updates_held_back(s: Scores, ctx: Context) -> None:
    """Settings that keep the updates from moving the weights: clipping far below the gradients'
    norm, weight decay that shrank the weights to nothing. They make the update/weight ratio look
    like an LR too low; raising the LR is not the fix."""
    c, w = ctx.clipping, ctx.weight_shrink
    if c:
        s.boost("clipping_too_tight", 0.95, f"clipping cut the gradient norm from a median {c['pre']:.3g} to "
                                            f"{c['post']:.3g} ({c['pre'] / max(c['post'], 1e-30):.3g}x) at "
                                            f"{100 * c['share']:.0f} % of the steps")
    if w:
        s.boost("weight_decay_too_strong", 0.9, f"the weight matrices' norms fell to {w['shrink']:.2g}x their "
                                                f"initial size with weight decay {w['decay']:g}")
        s.damp("bad_init", 0.3)
        s.damp("lr_too_high", 0.5)    # a large update/weight ratio of weights decayed to ~0 is the decay's doing
    if c or w:
        s.damp("lr_too_low", 0.3)
    eps_dominates(s, ctx)


def eps_dominates(s: Scores, ctx: Context) -> None:
    """An Adam-family eps >= 10x the gradients' RMS (optimizer_eps): the steps are lr * m / eps."""
    e = ctx.eps_too_large
    if not e:
        return
    s.boost("adam_eps_too_large", 0.95, f"{e['optimizer']}'s eps is {e['eps']:g}, {e['ratio']:.0f}x the gradients' "
                                        f"typical RMS per element ({e['grad_rms']:.2g}, the size of sqrt(v)): each "
                                        f"step is ~lr * m / eps, ~{e['ratio']:.0f}x smaller than with a negligible eps")
    s.damp("lr_too_low", 0.3)     # tiny updates, but the eps's doing: a 10x LR is not the fix
    s.damp("bad_init", 0.5)       # the flat loss has its explanation


def dropout_too_strong(s: Scores, ctx: Context) -> None:
    """A Dropout at p >= 0.8 (dropout.py): the training loss is that of a crippled network."""
    strong = strong_dropouts(ctx.dropout_rates)
    if not strong:
        return
    r = strong[0]
    more = f" (and {len(strong) - 1} more Dropout(s) at >= {STRONG_DROPOUT:g})" if len(strong) > 1 else ""
    s.boost("dropout_too_strong", 0.85, f"{ctx.label(r.module)} drops ~{r.p:.0%} of its inputs in training "
                                        f"(p ~{r.p:.2g}, {r.how(ctx.label)})"
                                        + more)
    s.damp("lr_too_low", 0.3)     # a higher LR does not give back the units dropped


def settings_slow_training(s: Scores, ctx: Context) -> None:
    """Settings read off the run that make training slow whatever the LR: a huge eps, strong dropout."""
    eps_dominates(s, ctx)
    dropout_too_strong(s, ctx)


def steps_without_gradients(s: Scores, ctx: Context) -> None:
    """The optimizer stepped and the weights stood still because the steps found no gradients
    (``Context.step_without_grads``): the order of the calls in the loop, not the optimizer's
    parameter list or its LR."""
    gone = ctx.step_without_grads
    if gone is None:
        return
    if gone == "skipped":
        skips = ctx.sig.point_counts.get(SYS_AMP_SKIPPED, 0)
        s.boost("numerical_instability", 0.95, f"the GradScaler skipped {skips} steps (sys/amp_skipped_step), nearly "
                                               "every one: the scaled gradients are inf/NaN at each step, so no "
                                               "update is applied (a loss or an operation that overflows float16)")
    elif gone == "no_step":
        s.boost("no_optimizer_step", 0.95, "the watched optimizer never stepped (no sys/step_time or gradient record) "
                                           "while the loss was logged at every step")
    elif gone == "cleared":
        s.boost("grads_cleared_before_step", 0.95, "backward() left gradients at every step (sys/grad_norm), yet no "
                                                   "optimizer step found any to apply, and the weights never moved")
    else:
        s.boost("no_backward", 0.95, "the optimizer stepped, and no parameter had a gradient at any step "
                                     "(sys/grad_norm never recorded): the weights never moved")
    for c in ("optimizer_setup", "lr_too_low", "bad_init", "activation_choice", "input_scaling"):
        s.damp(c, 0.3)


def training_stalled(s: Scores, ctx: Context) -> None:
    """A loss that stopped moving: what the other findings say about why."""
    updates_held_back(s, ctx)
    dropout_too_strong(s, ctx)
    weights_symmetric(s, ctx)
    frozen = ctx.facts("frozen_layers")
    if frozen.get("zero_grad") and "symmetric_weights" in ctx.found:
        s.boost("bad_init", 0.95, "zero gradients reach the first layer and its units are identical")
    if frozen.get("no_update") and "vanishing_gradients" not in ctx.found:
        s.boost("optimizer_setup", 0.8, "some parameters have gradients but are never updated")
    steps_without_gradients(s, ctx)
    if "dead_units" in ctx.found:
        start = ctx.facts("dead_units").get("dead_from_start")
        cause = "bad_init" if start else "activation_choice" if ctx.updates_stayed_normal else "lr_too_high"
        s.boost(cause, 0.8, "most ReLU units are dead " + (
            "from the first record (initialisation)" if start else "after training started" + (
                " with normal-sized updates: ReLUs die where LeakyReLU/GELU would not" if cause == "activation_choice"
                else "")))
        if start:
            s.damp("lr_too_low", 0.2)    # the weights stand still for want of gradient: a larger LR moves nothing
    if "vanishing_gradients" in ctx.found:
        if ctx.has_bounded_acts or not ctx.has_attention:
            s.boost("activation_choice" if ctx.has_bounded_acts else "depth_without_skip_connections", 0.8,
                    "gradients vanish before they reach the first layers")
        elif not ctx.warmed_up:     # transformer blocks have their skips (see vanishing_gradients)
            s.boost("lr_too_high", 0.8, "gradients vanish before the first layers of a transformer trained "
                                        "without an LR warm-up")
    saturated = ctx.found.get("saturated_activations")
    if saturated is not None and output_only(saturated, ctx):
        s.boost("activation_choice", 0.85, f"the model's output {ctx.output_activation} is saturated: its range must "
                                           "hold the targets, and almost no gradient flows back through it")
    elif saturated is not None:
        start = saturated.facts.get("saturated_from_start")
        s.boost("bad_init" if start else "activation_choice", 0.75,
                "sigmoid/tanh units are saturated" + (" from the first record" if start else "")
                + ", so almost no gradient flows")
    if ctx.output_activation in SQUASHING_OUTPUTS:
        s.boost("activation_choice", 0.85, f"the model's output goes through a {ctx.output_activation}: the loss "
                                           "gets squashed or clipped scores instead of logits")


def lr_exploded(s: Scores, finding: Finding) -> bool:
    """The loss shot up early and came back to where it started: the LR is too high, not too low."""
    boom = finding.facts.get("exploded_then_settled")
    if not boom:
        return False
    step, peak, _ = boom
    s.boost("lr_too_high", 0.9, f"the loss exploded to {peak:.3g} at step {step} and settled back at the level of "
                                "a model that predicts nothing: the first updates were far too large")
    s.damp("lr_too_low", 0.1)
    return True
