"""What the cause ranking knows about a run besides the findings themselves.

``Context`` holds the run's facts (model layout, LR history, update/weight ratio, input
statistics) and the findings found so far (``found``: symptom id -> Finding). Detectors read
it (e.g. the first non-finite step, to cut tables there) and the per-symptom cause adjusters
read it together with the findings' structured ``facts``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from trainspect.recorder.format import (SYS_GRAD_CARRIED, SYS_GRAD_NORM, SYS_GRAD_NORM_POST_CLIP, SYS_INPUT_MAX,
                                        SYS_INPUT_MEAN, SYS_INPUT_STD, SYS_LR, SYS_STEP_TIME, SYS_AMP_SKIPPED, SYS_LOSS_SCALE,
                                        SYS_INSTRUMENTS_OFF)

from ..frozen import frozen_numel, frozen_param_names, unoptimized_param_names
from ..labels import LayerLabels, listed_modules
from ..optimizer_settings import weight_decays
from ..vocab import Severity
from .activation_rules import BOUNDED_TYPES, RELU_TYPES
from .dropout import dropout_rates
from .functional_acts import PREACT_TYPES
from .gradient_rules import linear_growth, rise_then_still
from .optimizer_eps import eps_dominance
from .update_scale import peak_normal_level, updates_too_large
from .weight_rules import cumulative_change
from .series import finite_prefix, head_level, tail_level
from .signals import NORM_TYPES, Signals, main_loss

# cs231n: update/weight ratio ~1e-3. Healthy runs of the suite: 2e-3..9e-3 (median over
# weight matrices); LR too high: 1.6e-2..1.9e-2; LR too low: the most-updated layer <= 1.1e-5.
# Adam-family steps are ~lr per element: their yardstick is update_scale's (Context.ratio_high).
RATIO_HIGH = 1e-2     # median over weight matrices above this: evidence for lr_too_high (SGD)
RATIO_LOW = 3e-5      # even the most-updated weight matrix below this: evidence for lr_too_low
MIN_LOSS_POINTS = 20  # fewer training-loss points: the loss rules say nothing
AT_CHANCE = 0.2       # a first loss within 20 % of ln(C) is a model that started untrained
LN2 = math.log(2)
STATIC_WEIGHTS = 0.01  # weights that moved less than 1 % in all did not learn (suite: LR 1e-5/1e-6 runs <= 0.3 %)
# Clipping that scales most steps' gradients below a tenth is a tiny LR in disguise (clip_grad_norm_
# at 1.0 on a healthy run clips a few spikes; max_norm 1e-4 against norms ~0.5 clips every step 5000x).
CLIP_SHRINK = 0.1
CLIPPED_SHARE = 0.8
# Weight matrices whose norms fell 10x or more over a run with weight decay: the decay won.
DECAYED_WEIGHTS = 0.1



@dataclass
class Context:
    sig: Signals = field(default_factory=Signals)
    label: object = str                     # layer name -> words ("0.weight (Linear)")
    found: dict = field(default_factory=dict)   # symptom id -> Finding, in detection order
    optimizer: str = ""
    has_bounded_acts: bool = False          # sigmoid/tanh family in the model
    has_relu: bool = False
    has_norm_layers: bool = False           # BatchNorm/LayerNorm/GroupNorm...
    has_attention: bool = False             # attention/transformer blocks: residual by construction
    n_weight_layers: int = 0
    token_model: bool = False               # Embedding first: input statistics are token ids
    nan_step: int | None = None             # first step with a non-finite value (set by nan_inf)
    update_ratio: float | None = None       # median update/weight ratio of weight matrices (before any NaN)
    update_ratio_max: float | None = None   # the most-updated weight matrix (vanishing gradients leave it normal)
    update_ratio_peak: float | None = None  # the largest per-record median ratio (the updates at their largest)
    lr_steps: np.ndarray | None = None      # LR of param group 0 (finite, > 0)
    lr_values: np.ndarray | None = None
    train_loss_near_zero: bool = False      # training loss ends < 1 % of its initial level
    input_outliers: bool = False            # recorded input max far above its usual level
    degenerate_inputs: bool = False         # >= 1/4 of input batches constant (std 0): batch 1, all-ones rows
    output_activation: str = ""             # activation module after the last weight layer ("ReLU", "Softmax")
    output_module: str = ""                 # ... its name
    initial_output: tuple | None = None     # (module, output std at the first activation record) of the last weight layer
    init_gain: float | None = None          # median over weight matrices of rms x sqrt(fan_in) at the first record
    output_gain: float | None = None        # ... of the last weight matrix
    n_outputs: int | None = None            # output units of the last weight matrix
    n_tokens: int | None = None             # rows of the first embedding table (a token model's vocabulary)
    n_inputs: int | None = None             # input features of the first weight matrix (a Linear's in_features)
    grads_accumulate: dict | None = None    # the global gradient norm grows linearly: zero_grad() missing?
    grads_carried: dict | None = None       # the recorder's direct measurement of it (sys/grad_carried)
    lr_sweep: object = None                 # analysis.lr_range.LRSweep of this model, when one is at hand
    zero_gradients: bool = False            # every gradient exactly 0 at every record: the loss ignores the weights
    weight_change: float | None = None      # total relative change of the most-updated weight matrix over the run
    clipping: dict | None = None            # clipping scaled most steps' gradients far down (see gradient_clipping)
    clips: bool = False                     # the run clips its gradients (some step's applied norm < the raw one)
    weight_shrink: dict | None = None       # weight norms fell >= 10x with weight decay on (see weights_decayed)
    frozen_params: set | None = None        # names with requires_grad=False at watch() (None: not recorded)
    unoptimized_params: set | None = None   # trainable names outside the watched optimizer (None: not recorded)
    param_numel: dict = field(default_factory=dict)   # name -> elements
    eps_too_large: dict | None = None       # an Adam-family eps >= 10x the gradients' RMS (optimizer_eps)
    dropout_rates: list = field(default_factory=list)  # Dropout rates read back from their outputs (dropout.py)
    step_without_grads: str | None = None   # "cleared": backward's gradients gone at every step; "never": no
    #                                         gradient; "no_step": the watched optimizer never stepped;
    #                                         "skipped": a GradScaler skipped nearly every step

    @property
    def symptoms(self) -> set:
        return set(self.found)

    def untrained_loss(self, first: float) -> float:
        """The loss of the untrained model from the training loss's ``first`` value: ln(C) for a
        classifier started above it (one initialised far too large started at 33,000, and
        "fell 99.8 %" to a validation loss 26x chance)."""
        classes = self.n_outputs
        if classes and classes >= 2 and classes != self.n_inputs:
            return min(first, math.log(classes))
        return first

    def chance_loss(self, first: float) -> tuple[float, int] | None:
        """(ln C, C) when the training loss's ``first`` value sits within ``AT_CHANCE`` of the
        cross-entropy of a uniform guess over C classes, C being the output layer's size or, for
        a token model, its vocabulary (a GPT-2's last weight matrix is its MLP's, 4x its width):
        the model started untrained. None for a loss far from chance (a fine-tune starts below it;
        a regression loss has none)."""
        for classes in (self.n_outputs, self.n_tokens):
            if classes and classes >= 2 and classes != self.n_inputs:
                chance = math.log(classes)
                if abs(first - chance) <= AT_CHANCE * chance:
                    return chance, int(classes)
        return None

    def chance_level(self, first: float) -> tuple[float, int] | None:
        """``chance_loss``, and ln 2 for a binary classifier: one output behind a Sigmoid, which
        ``chance_loss`` leaves out because a one-output regression has no chance level."""
        if self.n_outputs == 1 and self.output_activation == "Sigmoid" and abs(first - LN2) <= AT_CHANCE * LN2:
            return LN2, 2
        return self.chance_loss(first)

    @cached_property
    def frozen_share(self) -> float:
        """Share of the parameters' elements frozen at watch() (0 when none or not recorded); read
        by several rules and by every finding's cause ranking: counted once."""
        total = sum(self.param_numel.values())
        return frozen_numel(self.sig.meta, self.sig.params) / total if total else 0.0

    @property
    def gradients_carried(self) -> bool:
        """The recorder measured most updates using a gradient never reset since the previous one."""
        return bool(self.grads_carried and self.grads_carried["carried_most"])

    @property
    def accumulating(self) -> bool:
        """Gradients accumulate across steps (zero_grad() missing): measured, or read off the norm."""
        return self.gradients_carried or bool(self.grads_accumulate)

    @property
    def ratio_high(self) -> str:
        """The updates are far larger than usual for this optimizer (update_scale): "median" (the
        run's median update/weight ratio), "peak" (an Adam-family run's first steps), or ""."""
        return updates_too_large(self.optimizer, self.update_ratio, self.update_ratio_peak, self.frozen_share)

    @property
    def ratio_low(self) -> bool:
        return self.update_ratio_max is not None and self.update_ratio_max < RATIO_LOW

    @property
    def updates_stayed_normal(self) -> bool:
        """The update/weight ratio is known and never went far above ~1e-3, not even for a while,
        nor was it far below (7.6e-08 is no "normal" ratio)."""
        return (self.update_ratio is not None and not self.ratio_high and self.update_ratio >= RATIO_LOW
                and (self.update_ratio_peak is None or self.update_ratio_peak <= peak_normal_level(self.optimizer)))

    @property
    def warmed_up(self) -> bool:
        """The LR rose to over twice its first value at some point (a warm-up)."""
        v = self.lr_values
        return v is not None and len(v) >= 2 and float(v.max()) > 2 * float(v[0])

    @property
    def warmup_unfinished(self) -> bool:
        """The LR only rose, to >= 5x its first value, and was still rising over the last 10 % of
        the run: a warm-up longer than the run (warmup_steps > total steps) never reached its LR."""
        v = self.lr_values
        if v is None or len(v) < 10 or float(v[-1]) < 5 * float(v[0]):
            return False
        tail = v[int(0.9 * (len(v) - 1)):]
        return bool(np.all(np.diff(v) >= -1e-12 * v[:-1]) and tail[-1] > 1.02 * tail[0])

    @property
    def deep(self) -> bool:
        return self.n_weight_layers >= 6

    @property
    def weights_static(self) -> bool:
        """The weights moved less than 1 % over the whole run: the loss cannot have changed by learning."""
        return self.weight_change is not None and self.weight_change < STATIC_WEIGHTS

    def loss_curve(self):
        """(name, steps, values) of the loss whose shape the curve rules judge, or None: also None when
        the weights never (or hardly) change, as the curve is then only batch-to-batch noise, and
        for a reinforcement-learning run (rewards logged)."""
        if self.sig.rewards:     # a reinforcement-learning run: its losses follow the returns (vocab)
            return None
        return None if self.zero_gradients or self.weights_static else main_loss(self.sig)

    def run_from_chance(self, min_steps: int):
        """(name, steps, values, first, end, (ln C, C)) of the judged loss curve of a run that started
        at chance and spans ``min_steps`` steps or more (``first``/``end``: medians of its first
        points and of its last 10 %), or None."""
        main = self.loss_curve()
        if main is None:
            return None
        name, steps, values = main
        steps, values = finite_prefix(steps, values)
        if len(values) < MIN_LOSS_POINTS or steps[-1] - steps[0] < min_steps:
            return None
        first, end = head_level(values), tail_level(values)
        chance = self.chance_level(first)
        return None if chance is None else (name, steps, values, first, end, chance)

    def on_loss_curve(self, rule):
        """``rule(steps, values, series=name, min_points=...)`` on the judged loss curve; None without one."""
        main = self.loss_curve()
        return None if main is None else rule(main[1], main[2], series=main[0], min_points=MIN_LOSS_POINTS)

    def another_warns(self, finding) -> bool:
        """A finding other than ``finding`` is a warning or an error: the rules that stand aside for
        any other explanation (their ``settle``) ask this."""
        return any(other is not finding and Severity(other.severity).rank >= Severity.WARNING.rank
                   for other in self.found.values())

    def facts(self, symptom: str) -> dict:
        """The structured facts of the finding of ``symptom`` ({} when it was not found)."""
        f = self.found.get(symptom)
        return f.facts if f is not None else {}

    # ---------------------------------------------------------------- LR history
    @property
    def lr_drop(self) -> float | None:
        """First LR / last LR (None without an LR series)."""
        if self.lr_values is None or len(self.lr_values) < 2:
            return None
        return float(self.lr_values[0] / self.lr_values[-1])

    @property
    def lr_drop_step(self) -> int | None:
        """First step where the LR is below a tenth of its first value."""
        if self.lr_values is None or len(self.lr_values) < 2:
            return None
        drop = np.flatnonzero(self.lr_values < self.lr_values[0] / 10)
        return int(self.lr_steps[drop[0]]) if drop.size else None

    @property
    def lr_constant(self) -> bool:
        v = self.lr_values
        return v is None or len(v) < 2 or float(v.max()) <= 1.01 * float(v.min())

    def lr_rise_before(self, step: int, factor: float = 2.0):
        """(first LR, LR at ``step``, step it first exceeded ``factor`` x the first) if the LR rose, else None.

        A warm-up or a schedule that raised the LR before ``step``."""
        if self.lr_values is None or len(self.lr_values) < 2:
            return None
        keep = self.lr_steps <= step
        if keep.sum() < 2:
            return None
        v, s = self.lr_values[keep], self.lr_steps[keep]
        first = float(v[0])
        up = np.flatnonzero(v > factor * first)
        if not up.size:
            return None
        return first, float(v[-1]), int(s[up[0]])


def build_context(sig: Signals) -> Context:
    """Facts of the run that need no finding: model layout, LR history, losses, input statistics."""
    types = [m.type for m in sig.modules]
    ctx = Context(sig=sig, label=LayerLabels(sig.modules, sig.params, sig.meta),
                  optimizer=str((sig.meta.get("optimizer") or {}).get("type", "")))
    ctx.has_relu = any(t in RELU_TYPES for t in types)
    ctx.has_norm_layers = any(t in NORM_TYPES for t in types)
    ctx.has_attention = _has_attention(sig.meta, types)
    ctx.n_weight_layers = sum(len(p.shape) >= 2 for p in sig.params)
    ctx.frozen_params = frozen_param_names(sig.meta, sig.params)
    ctx.unoptimized_params = unoptimized_param_names(sig.meta, sig.params)
    ctx.param_numel = {p.name: int(p.numel) for p in sig.params}
    ctx.token_model = bool(types) and types[0] in {"Embedding", "EmbeddingBag"}
    ctx.n_tokens = _vocabulary(sig)
    ctx.output_activation, ctx.output_module = _output_activation([m.name for m in sig.modules], types)
    # sigmoid/tanh between layers; one only on the output is not a hidden activation to replace
    ctx.has_bounded_acts = any(t in BOUNDED_TYPES for m, t in zip(sig.modules, types) if m.name != ctx.output_module)
    weights = [p for p in sig.params if len(p.shape) >= 2]
    head = _output_layer(sig)
    ctx.n_outputs = int(head[1].shape[0]) if head else None
    ctx.n_inputs = int(weights[0].shape[1]) if weights and len(weights[0].shape) == 2 else None
    lr = sig.scalars.get(SYS_LR)
    if lr is not None:
        s, v = lr
        ok = np.isfinite(v) & (v > 0)
        ctx.lr_steps, ctx.lr_values = np.asarray(s)[ok], np.asarray(v, dtype=np.float64)[ok]
    if sig.train_loss is not None:
        _, s, v = sig.train_loss
        s, v = finite_prefix(s, v)
        if len(v) >= MIN_LOSS_POINTS:
            init, end = head_level(v), tail_level(v)
            ctx.train_loss_near_zero = init > 0 and end < 0.01 * init
    total = sig.scalars.get(SYS_GRAD_NORM)
    # A GAN's generator gets steeper gradients as its discriminator wins: growth of the game, not a
    # missing zero_grad() (pytorch/examples' dcgan: 17 -> 88 over 90 steps, zeroed every step)
    if total is not None and not sig.adversarial:
        norms = finite_prefix(*total)
        loss = sig.train_loss[2] if sig.train_loss is not None else None
        ctx.grads_accumulate = linear_growth(*norms) or rise_then_still(*norms, loss)
    ctx.grads_carried = _grads_carried(sig, ctx)
    if ctx.grads_carried and not ctx.grads_carried["carried_most"]:
        ctx.grads_accumulate = None     # measured: reset before the updates; the norm grows for another reason
    ctx.initial_output = _initial_output(sig, head)
    gains = _init_gains(sig)
    ctx.init_gain = float(np.median(list(gains.values()))) if gains else None
    ctx.output_gain = gains.get(head[1].name) if head else None
    ctx.zero_gradients = _all_gradients_zero(sig)
    ctx.clips, ctx.clipping = gradient_clipping(sig)
    ctx.weight_shrink = weights_decayed(sig)
    ctx.eps_too_large = eps_dominance(sig)
    ctx.dropout_rates = dropout_rates(sig)
    ur = sig.layer.get("update_ratio")
    if ur is not None:
        by_name = {p.name: tuple(p.shape) for p in sig.params}
        ctx.weight_change = cumulative_change(ur.steps, ur, ur.layers, [by_name.get(n, ()) for n in ur.layers])
    ctx.step_without_grads = _step_without_grads(sig, ctx)
    hi = sig.scalars.get(SYS_INPUT_MAX)
    if hi is not None and len(hi[1]) >= 5:
        h = np.abs(hi[1][np.isfinite(hi[1])])
        ctx.input_outliers = bool(h.size and h.max() > 10 * max(np.median(h), 1e-12))
    if SYS_INPUT_STD in sig.scalars and SYS_INPUT_MEAN in sig.scalars:
        sd = sig.scalars[SYS_INPUT_STD][1]
        sd = sd[np.isfinite(sd)]
        ctx.degenerate_inputs = bool(sd.size and np.mean(sd == 0) >= 0.25)
    return ctx


def _vocabulary(sig) -> int | None:
    """Rows of the first embedding table: a language model's output vocabulary as well."""
    shapes = {p.name: p.shape for p in sig.params}
    for m in sig.modules:
        if m.type in ("Embedding", "EmbeddingBag"):
            shape = shapes.get(f"{m.name}.weight")
            return int(shape[0]) if shape and len(shape) == 2 else None
    return None


MIN_UPDATES_MEASURED = 3   # fewer updates with a reading of sys/grad_carried say nothing either way


def _grads_carried(sig, ctx) -> dict | None:
    """The recorder's reading of whether each update's gradient was reset since the previous
    one (``sys/grad_carried``): None where it was not recorded (or for too few updates)."""
    if SYS_GRAD_CARRIED not in sig.point_counts:    # not measured (an older recorder, no watched model)
        return None
    series = sig.scalars.get(SYS_GRAD_CARRIED, ((), ()))
    steps, values = np.asarray(series[0], dtype=np.int64), np.asarray(series[1], dtype=np.float64)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    # Rows only for updates whose gradient stayed a tensor; a reset to None (the default) writes none.
    updates = max(int(steps.size), sig.point_counts.get(SYS_GRAD_NORM, 0))
    if updates < MIN_UPDATES_MEASURED:
        return None
    carried = values >= 0.5
    n = int(carried.sum())
    skip = (ctx.frozen_params or set()) | (ctx.unoptimized_params or set())
    stepped = [p.name for p in sig.params if p.name not in skip]     # the recorder's probe is the last
    return {"carried": n, "updates": updates, "carried_most": n >= MIN_UPDATES_MEASURED and n * 2 > updates,
            "first": int(steps[carried][0]) if n else None, "last": int(steps[carried][-1]) if n else None,
            "probe": stepped[-1] if stepped else ""}


# A probability-style output module is an output wherever it is registered; a ReLU/Tanh module
# is often registered once at the end and used between layers, so it counts as the output only
# in an nn.Sequential (index names: registration order is the forward order).
OUTPUT_ACTIVATIONS = {"Softmax", "Sigmoid", "LogSoftmax", "Softmin"}
SEQUENTIAL_OUTPUT_ACTIVATIONS = OUTPUT_ACTIVATIONS | {"ReLU", "ReLU6", "Tanh", "Hardtanh"}


def _output_activation(names, types) -> tuple[str, str]:
    """(type, name) of the activation module applied to the model's output (after its last
    weight layer), or ("", "")."""
    sequential = bool(names) and all(n.split(".")[-1].isdigit() for n in names)
    allowed = SEQUENTIAL_OUTPUT_ACTIVATIONS if sequential else OUTPUT_ACTIVATIONS
    for name, t in zip(reversed(names), reversed(types)):
        if t in allowed:
            return t, name
        if t in PREACT_TYPES or not sequential:
            return "", ""
    return "", ""


SMALL_INIT = 0.2   # init gain below which each layer shrinks the signal (PyTorch's default 0.58, He 1.41)


def _init_gains(sig: Signals) -> dict:
    """name -> weight RMS x sqrt(fan_in) of each weight matrix at the first record: how much a
    layer scales a unit-variance input. PyTorch's default Linear init gives 0.58, He 1.41, Xavier
    ~1; N(0, 0.01) over 64 inputs gives 0.08, and ten such layers shrink the signal 10^11x."""
    wn = sig.layer.get("weight_norm")
    if wn is None or not len(wn):
        return {}
    shapes = {p.name: tuple(p.shape) for p in sig.params}
    first = wn.read(0, 1)[0].astype(np.float64)
    gains = {}
    for j, name in enumerate(wn.layers):
        shape = shapes.get(name, ())
        if len(shape) < 2 or not np.isfinite(first[j]) or first[j] <= 0:
            continue
        gains[name] = first[j] / np.sqrt(shape[0])     # rms x sqrt(fan_in) = norm / sqrt(fan_out)
    return gains


def _output_layer(sig: Signals) -> tuple | None:
    """(module, weight ParamInfo) of the output layer: the last weight layer in model order. A head
    tied to the token embedding (nanoGPT's ``wte.weight = lm_head.weight``, GPT-2, T5) owns no row
    of ``params/``: the shared tensor is recorded once, under its first owner, the embedding, and
    the last matrix left is an MLP projection's. Such a head is a leaf after the last owner of a
    matrix that the metadata lists with parameters yet owns none, and its parameter count is that
    of a recorded matrix (plus a bias of its rows): that matrix is its weight."""
    weights = [p for p in sig.params if len(p.shape) >= 2]
    if not weights:
        return None
    last = weights[-1]
    owners = {p.module for p in sig.params}
    leaves = [(m.name, m.type) for m in sig.modules if "#" not in m.name]
    after = next((i for i, (name, _) in enumerate(leaves) if name == last.module), None)
    counts = {m["name"]: m.get("params") for m in listed_modules(sig.meta)}
    for name, kind in reversed(leaves[after + 1:] if after is not None else []):
        n = counts.get(name)
        if not isinstance(n, int) or n <= 0 or name in owners or kind in ("Embedding", "EmbeddingBag"):
            continue
        tied = next((w for w in weights if len(w.shape) == 2 and n in (w.numel, w.numel + w.shape[0])), None)
        if tied is not None:
            return name, tied
    return last.module, last


def _initial_output(sig: Signals, head: tuple | None) -> tuple | None:
    """(module, std of its output at the first activation record) for the output layer ``head``
    (``_output_layer``): the untrained model's scores (~0.05-1.2 in every healthy run of the
    scenario suite; 16,000 for a ReLU MLP initialised N(0, 1))."""
    std = sig.layer.get("act_std")
    if std is None or not len(std) or head is None or head[0] not in std.layers:
        return None
    first = float(std.read(0, 1)[0, list(std.layers).index(head[0])])
    return (head[0], first) if np.isfinite(first) else None


def _has_attention(meta: dict, leaf_types) -> bool:
    """Attention or transformer blocks anywhere in the model (the run's leaf modules, or every
    module the metadata lists: in files recorded before nn.MultiheadAttention became a leaf,
    its out_proj was its only leaf)."""
    types = [*leaf_types, *(m.get("type", "") for m in listed_modules(meta))]
    return any(isinstance(t, str) and ("Attention" in t or t.startswith("Transformer")
                                       or t == "NonDynamicallyQuantizableLinear") for t in types)


def _step_without_grads(sig: Signals, ctx: Context) -> str | None:
    """Did the optimizer steps find no gradients while the weights stood still? The recorder
    registers `sys/grad_norm` at watch() with an optimizer: the norms backward() left (and those at
    the step without a backward capture); `sys/grad_norm_post_clip`, the norm the step applied, has
    points only from the first step clipping changed it, and is named without points when the
    steps found no gradients. "cleared":
    backward() made gradients every step, but none was there at any step (``zero_grad()``
    between ``backward()`` and ``step()``); "never": no gradient at all (no ``backward()``);
    "no_step": the optimizer never stepped (``sys/step_time``, also registered at watch(), is
    empty) while the loss was logged (no ``optimizer.step()``); "skipped": a GradScaler skipped
    >= 90 % of the steps (inf/NaN gradients at nearly every step)."""
    counts = sig.point_counts

    def registered_empty(name: str) -> bool:      # created at watch(), never a point since
        return counts.get(name) == 0

    if counts.get(SYS_INSTRUMENTS_OFF):
        return None           # the instruments failed and stopped: empty records say nothing of the loop
    n_loss = len(sig.train_loss[1]) if sig.train_loss is not None else 0
    skips = counts.get(SYS_AMP_SKIPPED, 0)
    if n_loss >= MIN_LOSS_POINTS and skips >= 0.9 * n_loss:
        return "skipped"      # a GradScaler skipped (nearly) every step: inf/NaN gradients each time
    if (n_loss >= MIN_LOSS_POINTS and ctx.optimizer and registered_empty(SYS_STEP_TIME)
            and registered_empty(SYS_GRAD_NORM) and not skips and not counts.get(SYS_LOSS_SCALE)):
        return "no_step"      # the watched optimizer never stepped (nor a GradScaler skipped it), the loss was logged
    if not ctx.weights_static or ctx.lr_values is None or not len(ctx.lr_values):
        return None
    trainable = {p.name for p in sig.params} - (ctx.frozen_params or set()) - (ctx.unoptimized_params or set())
    if sig.params and not trainable:     # nothing the optimizer holds can learn: frozen_layers says why
        return None
    if registered_empty(SYS_GRAD_NORM):
        return "never"
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is not None and registered_empty(SYS_GRAD_NORM_POST_CLIP):
        v = np.asarray(total[1])
        if len(v) >= 5 and np.all(np.isfinite(v)) and np.median(v) > 0:
            return "cleared"
    return None


def _all_gradients_zero(sig: Signals) -> bool:
    """Every recorded gradient is exactly 0 (global norm, or every parameter that has one)."""
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is not None:
        v = total[1][np.isfinite(total[1])]
        if v.size >= 3:
            return bool(np.all(v == 0))
    g = sig.layer.get("grad_norm")
    if g is None or len(g) < 3:
        return False
    s = g.summary
    has = ~s.all_nan
    return bool(has.any() and np.all(s.all_zero[has]))


def gradient_clipping(sig: Signals) -> tuple[bool, dict | None]:
    """(clips, heavy): whether some step applied a smaller gradient than the backward left
    (``sys/grad_norm_post_clip`` below ``sys/grad_norm`` at the same step: clip_grad_norm_ at
    work), and {"share", "pre", "post"} when it scaled >= 80 % of the steps' gradients below a
    tenth (else None). One pass over the two series."""
    pre, post = sig.scalars.get(SYS_GRAD_NORM), sig.scalars.get(SYS_GRAD_NORM_POST_CLIP)
    if pre is None:
        return False, None
    if post is None:
        if sig.meta.get("optimizer"):   # watched: the recorder writes it from the first step clipping changed
            return False, None
        # none watched: the norm is read after the script's own clipping, or the config names its max_norm
        return _clipped_ceiling(pre[1]) or config_clips(sig.meta.get("config")), None
    _, a, b = np.intersect1d(pre[0], post[0], return_indices=True)
    g, c = np.asarray(pre[1], np.float64)[a], np.asarray(post[1], np.float64)[b]
    ok = np.isfinite(g) & np.isfinite(c) & (g > 0)
    g, c = g[ok], c[ok]
    clips = bool(np.any(c < 0.999 * g))
    if len(g) < 10:
        return clips, None
    share = float(np.mean(c < CLIP_SHRINK * g))
    if share < CLIPPED_SHARE:
        return clips, None
    return clips, {"share": share, "pre": float(np.median(g)), "post": float(np.median(c))}


CEILING_SHARE = 0.2   # steps whose gradient norm sits exactly at its largest value: clipped there

# config keys that hold a gradient clipping norm (pytorch/examples' --clip, nanoGPT's grad_clip, HF's max_grad_norm,
# Lightning's gradient_clip_val); not an RL clip range (clip_coef, clip_range, clip_param)
CLIP_KEYS = {"clip", "grad_clip", "clip_grad", "clip_grad_norm", "max_grad_norm", "grad_norm_clip", "gradient_clip_val",
             "gradient_clipping", "clip_norm", "max_norm", "grad_clip_norm"}


def config_clips(config) -> bool:
    """The run's config names a gradient clipping norm above 0 (top level, or one level down): a
    hand-written update (no optimizer watched) leaves no post-clip norm for the recorder to compare,
    and a norm read before the script's clip_grad_norm_ is not pinned (trial 18 U8: "clip gradients"
    to pytorch/examples' word_language_model, which clips at 0.25)."""
    return config_clip(config) is not None


def config_clip(config) -> float | None:
    """The gradient clipping norm (> 0) the run's config names (top level, or one level down), or None."""
    if not isinstance(config, dict):
        return None
    items = list(config.items()) + [kv for v in config.values() if isinstance(v, dict) for kv in v.items()]
    for key, value in items:
        if str(key).lower().lstrip("-") in CLIP_KEYS and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and np.isfinite(value) and value > 0:
            return float(value)
    return None
    items = list(config.items()) + [kv for v in config.values() if isinstance(v, dict) for kv in v.items()]
    for key, value in items:
        if str(key).lower().lstrip("-") in CLIP_KEYS and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and np.isfinite(value) and value > 0:
            return True
    return False


def _clipped_ceiling(norms) -> bool:
    """A hand-written update reads the gradients after clip_grad_norm_ (pytorch/examples'
    word_language_model clips at 0.25): the norm sits at the clip value, its largest, at many
    steps (61 % there; an unclipped norm repeats its maximum at one)."""
    v = np.asarray(norms, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) < 10:
        return False
    return bool(np.mean(v >= v.max() * (1 - 1e-5)) >= CEILING_SHARE)


def weights_decayed(sig: Signals) -> dict | None:
    """{"shrink", "decay"} when the weight matrices' norms fell 10x or more (median over matrices,
    first record to last) in a run whose optimizer applies weight decay, else None."""
    decays = weight_decays(sig.meta.get("optimizer"))
    wn = sig.layer.get("weight_norm")
    if not decays or wn is None or len(wn) < 3:
        return None
    shapes = {p.name: tuple(p.shape) for p in sig.params}
    cols = [j for j, name in enumerate(wn.layers) if len(shapes.get(name, ())) >= 2]
    if not cols:
        return None
    first, last = wn.read(0, 1)[0, cols].astype(np.float64), wn.read(len(wn) - 1, len(wn))[0, cols].astype(np.float64)
    ok = np.isfinite(first) & np.isfinite(last) & (first > 0)
    if not ok.any():
        return None
    shrink = float(np.median(last[ok] / first[ok]))
    return {"shrink": shrink, "decay": max(decays)} if shrink <= DECAYED_WEIGHTS else None
