"""Cause ranking and fixes: all the evidence of a run together decides which cause is likely.

Each symptom has prior confidences over causes (what usually produces it); facts about
the run (``Context``: update/weight ratio, LR schedule, model layout, the other symptoms
found) raise or lower them. The ranked causes pick the fixes, in the order a careful
engineer would try them, and what experiment would confirm the diagnosis.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..findings import Cause, Finding

# cs231n: update/weight ratio ~1e-3. Healthy runs of the suite: 2e-3..9e-3 (median over
# weight matrices); LR too high: 1.6e-2..1.9e-2; LR too low: the most-updated layer <= 1.1e-5.
RATIO_HIGH = 1e-2     # median over weight matrices above this: evidence for lr_too_high
RATIO_LOW = 3e-5      # even the most-updated weight matrix below this: evidence for lr_too_low


@dataclass
class Context:
    symptoms: set = field(default_factory=set)
    update_ratio: float | None = None        # median update/weight ratio of weight matrices
    update_ratio_max: float | None = None    # the most-updated weight matrix (vanishing gradients leave it normal)
    lr_drop: float | None = None             # first LR / last LR of group 0 (schedule), None if no LR
    lr_drop_step: int | None = None
    has_bounded_acts: bool = False           # sigmoid/tanh family in the model
    has_relu: bool = False
    has_norm_layers: bool = False            # BatchNorm/LayerNorm/GroupNorm...
    n_weight_layers: int = 0
    dead_from_start: bool = False
    grad_growth_before_nan: float | None = None   # grad norm just before NaN / early grad norm
    loss_rise_before_nan: bool = False
    frozen_no_update: bool = False           # a parameter has gradients but never changes
    frozen_zero_grad: bool = False
    train_loss_near_zero: bool = False       # training loss ends < 1 % of its initial level
    spikes_isolated: bool = False            # loss spikes last a single point
    input_outliers: bool = False             # recorded input max far above its usual level
    optimizer: str = ""

    @property
    def ratio_high(self) -> bool:
        return self.update_ratio is not None and self.update_ratio > RATIO_HIGH

    @property
    def ratio_low(self) -> bool:
        return self.update_ratio_max is not None and self.update_ratio_max < RATIO_LOW

    @property
    def deep(self) -> bool:
        return self.n_weight_layers >= 6


PRIORS = {
    "nan_inf": {"lr_too_high": 0.5, "numerical_instability": 0.4, "input_scaling": 0.2, "bad_init": 0.1},
    "divergence": {"lr_too_high": 0.6, "numerical_instability": 0.2, "input_scaling": 0.15, "optimizer_setup": 0.1},
    "loss_oscillation": {"lr_too_high": 0.6, "input_scaling": 0.2, "missing_normalization": 0.2, "label_noise": 0.1},
    "loss_spikes": {"lr_too_high": 0.4, "label_noise": 0.35, "input_scaling": 0.25, "numerical_instability": 0.2},
    "no_progress": {"lr_too_low": 0.45, "bad_init": 0.3, "optimizer_setup": 0.25, "activation_choice": 0.15,
                    "input_scaling": 0.1},
    "early_plateau": {"insufficient_capacity": 0.35, "lr_too_low": 0.3, "activation_choice": 0.2, "bad_init": 0.15,
                      "lr_too_high": 0.1},
    "overfitting": {"insufficient_regularization": 0.7, "label_noise": 0.25},
    "vanishing_gradients": {"depth_without_skip_connections": 0.4, "activation_choice": 0.35, "bad_init": 0.25,
                            "missing_normalization": 0.2},
    "exploding_gradients": {"lr_too_high": 0.4, "bad_init": 0.35, "missing_normalization": 0.2,
                            "depth_without_skip_connections": 0.15, "numerical_instability": 0.1},
    "dead_units": {"lr_too_high": 0.4, "bad_init": 0.3, "activation_choice": 0.3},
    "saturated_activations": {"bad_init": 0.4, "input_scaling": 0.3, "activation_choice": 0.3,
                              "missing_normalization": 0.2, "lr_too_high": 0.1},
    "symmetric_weights": {"bad_init": 0.95},
    "unnormalized_inputs": {"input_scaling": 0.95},
    "frozen_layers": {"optimizer_setup": 0.6, "bad_init": 0.3, "activation_choice": 0.1},
}


def _adjust(symptom: str, ctx: Context, score: dict, why: dict) -> None:
    """Move confidences with the run's facts; ``why`` collects the reason for each change."""
    def boost(cause, value, reason):
        score[cause] = max(score.get(cause, 0.0), value)
        why[cause] = reason

    def damp(cause, factor):
        if cause in score:
            score[cause] *= factor

    if ctx.ratio_high and symptom in {"nan_inf", "divergence", "loss_oscillation", "loss_spikes", "dead_units",
                                      "exploding_gradients", "early_plateau"}:
        boost("lr_too_high", 0.9, f"update/weight ratio {ctx.update_ratio:.2g} is far above ~1e-3 (cs231n)")
    if ctx.ratio_low and symptom in {"no_progress", "early_plateau"}:
        boost("lr_too_low", 0.9, f"update/weight ratio {ctx.update_ratio_max:.2g} (largest layer) is far below "
                                 "~1e-3 (cs231n)")
    if ctx.ratio_low:
        damp("lr_too_high", 0.3)
    if ctx.ratio_high:
        damp("lr_too_low", 0.3)
    if symptom == "early_plateau" and ctx.lr_drop is not None and ctx.lr_drop >= 100:
        boost("lr_too_low", 0.85, f"the LR schedule cut the LR {ctx.lr_drop:.0f}x (step {ctx.lr_drop_step}) "
                                  "around where the loss stopped improving")
    if "unnormalized_inputs" in ctx.symptoms and symptom != "unnormalized_inputs":
        boost("input_scaling", 0.75 if symptom in {"saturated_activations", "nan_inf", "loss_oscillation"} else 0.6,
              "the inputs are not standardised (see unnormalized_inputs)")
    if "symmetric_weights" in ctx.symptoms and symptom in {"no_progress", "early_plateau", "frozen_layers",
                                                            "vanishing_gradients", "dead_units"}:
        boost("bad_init", 0.9, "units of a layer are identical: a constant/zero initialisation never breaks symmetry")
    if symptom in {"no_progress", "early_plateau"} and ctx.frozen_zero_grad and "symmetric_weights" in ctx.symptoms:
        boost("bad_init", 0.95, "zero gradients reach the first layer and its units are identical")
    if symptom in {"no_progress", "early_plateau"} and ctx.frozen_no_update and "vanishing_gradients" not in ctx.symptoms:
        boost("optimizer_setup", 0.8, "some parameters have gradients but are never updated")
    if symptom in {"no_progress", "early_plateau"} and "dead_units" in ctx.symptoms:
        boost("bad_init" if ctx.dead_from_start else "lr_too_high", 0.8,
              "most ReLU units are dead " + ("from the first record (initialisation)" if ctx.dead_from_start
                                             else "after training started"))
    if symptom in {"no_progress", "early_plateau"} and "vanishing_gradients" in ctx.symptoms:
        boost("activation_choice" if ctx.has_bounded_acts else "depth_without_skip_connections", 0.8,
              "gradients vanish before they reach the first layers")
    if symptom in {"no_progress", "early_plateau"} and "saturated_activations" in ctx.symptoms:
        boost("bad_init", 0.75, "sigmoid/tanh units are saturated, so almost no gradient flows")
    if symptom == "dead_units":
        if ctx.dead_from_start:
            boost("bad_init", 0.85, "the units were dead from the first record: initialisation (e.g. negative biases)")
            damp("lr_too_high", 0.3)     # dead before any large update was made
        else:
            boost("lr_too_high", max(score.get("lr_too_high", 0), 0.6), "units died during training: large updates "
                                                                        "pushed them into the negative region")
    if symptom == "vanishing_gradients":
        if ctx.has_bounded_acts:
            boost("activation_choice", 0.8, "sigmoid/tanh derivatives (<= 0.25 / 1) shrink the gradient at every layer")
        if ctx.deep:
            boost("depth_without_skip_connections", max(score.get("depth_without_skip_connections", 0), 0.7),
                  f"{ctx.n_weight_layers} weight layers in a chain")
        if ctx.has_norm_layers:
            damp("missing_normalization", 0.3)
    if symptom == "exploding_gradients":
        if "nan_inf" not in ctx.symptoms and "divergence" not in ctx.symptoms and not ctx.ratio_high:
            boost("bad_init", 0.8, "gradients grow toward the input from the start while the loss does not diverge: "
                                   "weights initialised too large")
        if ctx.has_norm_layers:
            damp("missing_normalization", 0.3)
    if symptom == "saturated_activations" and "unnormalized_inputs" not in ctx.symptoms:
        boost("bad_init", 0.8, "inputs are standardised, so the weights are too large for sigmoid/tanh")
    if symptom == "nan_inf":
        if ctx.grad_growth_before_nan is not None and ctx.grad_growth_before_nan > 10 or ctx.loss_rise_before_nan:
            boost("lr_too_high", 0.85, "the loss/gradient norm grew in the steps before it became non-finite")
        elif ctx.grad_growth_before_nan is not None:
            boost("numerical_instability", 0.7, "the values were unremarkable right before: a sudden overflow "
                                                "(log(0), division, fp16) rather than a slow divergence")
    if symptom == "loss_spikes":
        if "loss_oscillation" in ctx.symptoms or "divergence" in ctx.symptoms:
            boost("lr_too_high", 0.8, "the spikes come with oscillation/divergence of the loss level")
        elif ctx.input_outliers:
            boost("input_scaling", 0.8, "the recorded inputs had outlier batches")
        elif ctx.spikes_isolated and not ctx.ratio_high:
            boost("label_noise", 0.7, "each spike is a single batch the model recovers from at once: bad or "
                                      "mislabelled samples rather than an unstable optimiser")
    if symptom == "overfitting" and ctx.train_loss_near_zero:
        boost("label_noise", 0.35, "the training loss reached ~0: the model memorises its training set, "
                                   "noisy labels included")
    if symptom == "frozen_layers":
        if ctx.frozen_zero_grad and not ctx.frozen_no_update:
            damp("optimizer_setup", 0.2)     # the optimizer cannot make a gradient exactly zero
        if ctx.frozen_no_update and not ctx.frozen_zero_grad and "vanishing_gradients" not in ctx.symptoms:
            damp("bad_init", 0.3)            # gradients arrive, the optimizer does not use them
            damp("activation_choice", 0.3)
        if "vanishing_gradients" in ctx.symptoms:
            damp("optimizer_setup", 0.2)     # the updates exist but are too small to change float32 weights
            boost("activation_choice" if ctx.has_bounded_acts else "depth_without_skip_connections", 0.95,
                  "gradients vanish: updates too small to change the float32 weights")
        elif ctx.frozen_no_update:
            boost("optimizer_setup", 0.9, "the parameters have gradients but the optimizer never changes them")
        elif ctx.frozen_zero_grad and "symmetric_weights" in ctx.symptoms:
            boost("bad_init", 0.9, "no gradient flows through identical (constant/zero) weights")
        elif ctx.frozen_zero_grad and "dead_units" in ctx.symptoms:
            boost("bad_init" if ctx.dead_from_start else "activation_choice", 0.7,
                  "dead ReLUs pass no gradient" + (" (dead from the first record)" if ctx.dead_from_start else ""))
    if symptom == "loss_oscillation" and ctx.has_norm_layers:
        damp("missing_normalization", 0.3)
    if symptom == "early_plateau" and not ({"dead_units", "saturated_activations", "vanishing_gradients"} & ctx.symptoms):
        why.setdefault("insufficient_capacity", "no sign of dead/saturated units or vanishing gradients: the model "
                                                "may be too small for the task")
    # The LR cannot be both too high and too low: strong evidence for one discounts the other.
    if score.get("lr_too_high", 0) >= 0.8 and "lr_too_low" in score and not ctx.ratio_low:
        damp("lr_too_low", 0.3)
    elif score.get("lr_too_low", 0) >= 0.8 and "lr_too_high" in score and not ctx.ratio_high:
        damp("lr_too_high", 0.3)


DEFAULT_WHY = {
    "lr_too_high": "a step size too large for the loss surface throws the parameters around",
    "lr_too_low": "updates are too small to move the loss in the steps given",
    "bad_init": "the initial weights put units in a regime where gradients cannot flow or differ",
    "input_scaling": "inputs far from zero mean/unit scale make the first layer's pre-activations huge",
    "missing_normalization": "without BatchNorm/LayerNorm activations drift in scale across layers",
    "activation_choice": "the activation function kills or squashes the gradient",
    "insufficient_regularization": "the model fits its training set better and better while generalising worse",
    "insufficient_capacity": "the model may be too small to fit the data",
    "optimizer_setup": "the optimizer may not see all parameters, or its settings stop updates",
    "label_noise": "mislabelled or corrupt samples give large, unfittable losses",
    "numerical_instability": "an operation overflowed or produced NaN (log(0), division by zero, fp16 range)",
    "depth_without_skip_connections": "a deep plain chain multiplies gradients layer after layer",
}

FIX_BOUNDED_TO_RELU = "replace sigmoid/tanh in hidden layers with ReLU-family activations (ReLU/LeakyReLU/GELU)"
FIX_RELU_TO_LEAKY = "replace ReLU with LeakyReLU/GELU so units cannot die"
FIX_SPIKE_BATCHES = "inspect the batches at the spike/high-loss steps for wrong labels or corrupt samples"
FIX_NOISY_SAMPLES = "look for mislabelled samples: sort the training set by per-sample loss and inspect the worst"


FIXES = {
    "lr_too_high": ["reduce the learning rate 10x", "add a learning-rate warm-up",
                    "clip gradients (e.g. clip_grad_norm_ at 1.0)"],
    "lr_too_low": ["raise the learning rate 10x (or run an LR range test)",
                   "check the LR schedule: does it decay too early or too far?"],
    "bad_init": ["use He (Kaiming) init for ReLU layers, Xavier (Glorot) for tanh/sigmoid; never zero/constant "
                 "weights", "initialise biases to 0"],
    "input_scaling": ["standardise the inputs (subtract the training-set mean, divide by its std)",
                      "check the preprocessing pipeline for un-scaled or corrupt batches"],
    "missing_normalization": ["add BatchNorm/LayerNorm between layers"],
    "activation_choice": [FIX_BOUNDED_TO_RELU, FIX_RELU_TO_LEAKY],      # cause_fixes picks the one that applies
    "insufficient_regularization": ["stop early at the best validation step", "add weight decay",
                                    "add dropout or data augmentation", "use a smaller model or more data"],
    "insufficient_capacity": ["make the model wider/deeper (look for a too-narrow bottleneck layer)",
                              "train longer"],
    "optimizer_setup": ["check the optimizer's parameter list (model.parameters() after every layer is built)",
                        "check requires_grad flags, per-group LRs and that zero_grad/step are called"],
    "label_noise": [FIX_SPIKE_BATCHES,
                    "use label smoothing or a robust loss", "clip gradients so single batches cannot derail training"],
    "numerical_instability": ["use numerically stable ops (log_softmax/cross_entropy instead of log(softmax), "
                              "add eps to divisions and logs)", "clip gradients",
                              "in mixed precision use a loss scaler / bf16", "check the data for NaN/Inf"],
    "depth_without_skip_connections": ["add residual (skip) connections", "add BatchNorm/LayerNorm between layers",
                                       "use fewer layers"],
}

CONFIRM = {
    "lr_too_high": "re-run with LR/10: the {what} should shrink or vanish",
    "lr_too_low": "re-run with LR x10: the loss should fall clearly faster",
    "bad_init": "re-run with default He/Xavier init: the {what} should not appear",
    "input_scaling": "re-run with standardised inputs: the {what} should go away",
    "missing_normalization": "add normalization layers and compare: the {what} should shrink",
    "activation_choice": "swap the activation (e.g. to LeakyReLU/GELU): the {what} should go away",
    "insufficient_regularization": "re-run with weight decay/dropout: validation loss should stop rising",
    "insufficient_capacity": "re-run with a 2x wider model: the loss should drop below the plateau",
    "optimizer_setup": "print the optimizer's parameter names next to model.named_parameters(): the missing ones "
                       "are the frozen layers",
    "label_noise": "look at the samples of the worst batches: wrong labels confirm it",
    "numerical_instability": "re-run with torch.autograd.set_detect_anomaly(True) to find the op producing NaN",
    "depth_without_skip_connections": "add skip connections: first-layer gradients should grow by orders of magnitude",
}

SYMPTOM_WORDS = {
    "nan_inf": "NaN", "divergence": "divergence", "loss_oscillation": "oscillation", "loss_spikes": "spikes",
    "no_progress": "flat loss", "early_plateau": "plateau", "overfitting": "overfitting",
    "vanishing_gradients": "vanishing gradient", "exploding_gradients": "gradient growth", "dead_units": "dead units",
    "saturated_activations": "saturation", "symmetric_weights": "symmetry", "unnormalized_inputs": "input scale",
    "frozen_layers": "frozen layers",
}


def rank_causes(finding: Finding, ctx: Context) -> list[Cause]:
    score = dict(PRIORS.get(finding.symptom, {}))
    why: dict = {}
    _adjust(finding.symptom, ctx, score, why)
    ranked = sorted(score.items(), key=lambda kv: -kv[1])
    return [Cause(id=c, confidence=round(min(1.0, v), 2), why=why.get(c, DEFAULT_WHY[c])) for c, v in ranked]


def _fix_key(fix: str) -> str:
    # "clip gradients (e.g. ...)" and "clip gradients so ..." are the same advice.
    return fix.split(" (")[0].split(" so ")[0].strip().lower()


def _init_fix(ctx: Context) -> str:
    """The init advice for the activations the model has (both when unknown)."""
    parts = []
    if ctx.has_relu or not ctx.has_bounded_acts:
        parts.append("He (Kaiming) init for ReLU layers")
    if ctx.has_bounded_acts or not ctx.has_relu:
        parts.append("Xavier (Glorot) init for tanh/sigmoid layers")
    return f"use {', '.join(parts)}; never zero/constant weights"


def cause_fixes(cause: str, symptom: str, ctx: Context) -> list[str]:
    """The fixes of ``cause`` that apply to this symptom and this model (``FIXES`` is the full list).

    Advice that cannot apply is left out: replacing sigmoid/tanh in a model without them,
    LeakyReLU against dying units when no unit died, an LR-schedule check for a constant LR,
    "check the data for NaN/Inf" when nothing was non-finite, spike batches without spikes.
    """
    fixes = list(FIXES[cause])
    if cause == "activation_choice":
        fixes = []
        if ctx.has_bounded_acts and symptom in {"vanishing_gradients", "saturated_activations", "no_progress",
                                                "early_plateau", "frozen_layers"}:
            fixes.append(FIX_BOUNDED_TO_RELU)
        if ctx.has_relu and (symptom == "dead_units" or "dead_units" in ctx.symptoms):
            fixes.append(FIX_RELU_TO_LEAKY)
    elif cause == "bad_init":
        fixes[0] = _init_fix(ctx)
    elif cause == "lr_too_low":
        if ctx.lr_drop is not None and ctx.lr_drop < 2:       # a constant LR: no schedule to check
            fixes = [f for f in fixes if not f.startswith("check the LR schedule")]
    elif cause == "numerical_instability":
        if symptom != "nan_inf":
            fixes = [f for f in fixes if f != "check the data for NaN/Inf"]
    elif cause == "label_noise":
        if symptom != "loss_spikes":
            fixes = [FIX_NOISY_SAMPLES if f == FIX_SPIKE_BATCHES else f for f in fixes
                     if not f.startswith("clip gradients")]
    return fixes


def fixes_for(finding: Finding, causes: list[Cause], ctx: Context) -> list[str]:
    out = []
    seen = set()
    checkpoint = finding.symptom == "overfitting" and finding.first_step is not None
    if checkpoint:
        out.append(f"keep the checkpoint from step {finding.first_step} (best validation loss)")
    for c in causes:
        if c.confidence < 0.15:
            continue
        for fix in cause_fixes(c.id, finding.symptom, ctx):
            if checkpoint and fix.startswith("stop early at the best validation step"):
                continue            # the checkpoint of the best validation step says it already
            if _fix_key(fix) not in seen:
                seen.add(_fix_key(fix))
                out.append(fix)
    return out


def attach(finding: Finding, ctx: Context) -> Finding:
    finding.causes = rank_causes(finding, ctx)
    finding.fixes = fixes_for(finding, finding.causes, ctx)
    if finding.causes:
        finding.confirm = CONFIRM[finding.causes[0].id].format(what=SYMPTOM_WORDS[finding.symptom])
    return finding
