"""``dead_units``: ReLU layers where most units output 0 for every sample of a batch."""
from __future__ import annotations


import numpy as np

from trainspect.recorder.format import SYS_BATCH_SIZE, SYS_INPUT_NUMEL

from .. import activation_rules, functional_acts
from ..causes import lr_from_update_ratio, weights_symmetric
from ..dropout import after_dropout, fed_by
from ...findings import Evidence
from ...vocab import Severity
from ..series import as_series, finite_prefix, fmt, smooth_curve, tail_level
from ..spec import SymptomSpec
from ._cut import types_of


MAX_JUDGED_DROPOUT = 0.5    # behind a Dropout of a higher rate a ReLU is judged strictly (_behind_dropouts)


def detect(sig, ctx):
    d = sig.layer.get("act_dead_frac")
    if d is None or ctx.degenerate_inputs:       # a constant input batch kills units by itself: no evidence
        return None
    mods = d.layers
    types = types_of(sig, mods)
    if _one_sample_batches(d, sig.layer.get("act_frac_nonpos")) or _small_batches(sig, ctx):
        return None
    dropped, strict = _behind_dropouts(sig, ctx, mods, types)
    f = activation_rules.detect_dead_units(d.steps, d, sig.layer.get("act_frac_nonpos"), mods, types,
                                           label=ctx.label, dropped=dropped, strict=strict)
    if f is None:   # activations applied as functions: judge the Linear/Conv pre-activations
        f = functional_acts.detect_dead_behind_functions(d.steps, d, mods, types, label=ctx.label,
                                                         grad_norm=sig.layer.get("grad_norm"),
                                                         shapes=functional_acts.weight_shapes(sig.params))
        ctx.has_relu = ctx.has_relu or f is not None
    return f


def _behind_dropouts(sig, ctx, mods, types) -> tuple[dict, set]:
    """How to judge a ReLU registered right after a Dropout. It sees the Dropout's zeros (90 % of
    its outputs at p = 0.9, whole units <= 0 for a small batch), which are not dead units:

    - the Dropout's statistics say the ReLU feeds it (``drop(relu(x))``, registered the other
      way round): judged as any ReLU;
    - the rate is known and at most MAX_JUDGED_DROPOUT: judged less the Dropout's zeros
      (``dropped``: a whole unit zeroed in a batch of B takes p**B, negligible);
    - otherwise (``strict``): by its dead units alone, at a higher threshold.
    """
    rates = {r.module: r.p for r in ctx.dropout_rates}
    dropped, strict = {}, set()
    for j in after_dropout(types):
        if types[j] not in activation_rules.RELU_TYPES:
            continue
        drop, p = mods[j - 1], rates.get(mods[j - 1])
        if p is not None and fed_by(sig, drop, mods[j], p):
            continue
        if p is not None and p <= MAX_JUDGED_DROPOUT:
            dropped[j] = p
        else:
            strict.add(j)
    return dropped, strict


MIN_BATCH = 8    # samples in the recorded batches below which "dead for the whole batch" is no evidence


def _small_batches(sig, ctx) -> bool:
    """The model's recorded inputs give each unit fewer than MIN_BATCH values: "<= 0 for every
    sample of the batch" is then "<= 0 for these few", ~half of any healthy ReLU layer for one.
    An RL policy fed one state per forward (pytorch/examples' reinforce/actor_critic) read "67 %
    dead, reduce the LR 10x", its healthy, solving twin 73 % (trial 18 U4). A unit sees every
    position of its input: a first Linear's input elements over its in_features (B, B*T, or 1 for
    an unbatched 1-D state, which older files recorded with its length as the batch size), an
    Embedding's tokens; a convolution's channel sees every pixel of every image, so a CNN's small
    batches (4 images of 8x8: 256 values a channel) stay judged."""
    found = sig.scalars.get(SYS_BATCH_SIZE)
    if found is None or not ctx.n_inputs:       # no batch recorded, or a convolution first
        return False
    b = np.asarray(found[1], dtype=np.float64)
    ok = np.isfinite(b) & (b > 0)
    if not ok.any():
        return False
    values = b[ok]
    numel = sig.scalars.get(SYS_INPUT_NUMEL)
    if numel is not None and len(numel[1]) == len(found[1]):
        n = np.asarray(numel[1], dtype=np.float64)[ok]
        token_ids = bool(sig.modules) and sig.modules[0].type == "Embedding"
        values = np.where(np.isfinite(n) & (n > 0), n if token_ids else n / ctx.n_inputs, values)
    return float(np.median(values)) < MIN_BATCH


def _one_sample_batches(dead, nonpos) -> bool:
    """Batches of one sample: "dead for the whole batch" is then "<= 0 for that sample", half of any
    healthy ReLU layer (the two statistics are equal in every record). Not when a layer is all
    dead: it has both at 1.0 whatever the batch size, and the layers after it see a constant
    input (a ReLU net with biases of -10: the worst case was taken for one-sample batches)."""
    if nonpos is None or len(dead) < 3 or len(nonpos) != len(dead):
        return False
    n = min(len(dead), 64)
    a, b = dead.read(0, n).astype(np.float64), nonpos.read(0, n).astype(np.float64)
    # Records with a layer all dead say nothing of the batch size: the layers after it see a
    # constant input, where the two statistics agree whatever the batch size. The others decide
    # (batches of one whose LR then blew a layer dead were taken for real batches).
    calm = ~np.any(a >= 1.0, axis=1)
    a, b = a[calm], b[calm]
    ok = np.isfinite(a) & np.isfinite(b) & (b > 0) & (b < 1)
    return bool(ok.any() and np.all(np.abs(a[ok] - b[ok]) < 1e-6))


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    weights_symmetric(s, ctx)
    if ctx.output_activation in ("ReLU", "ReLU6"):
        s.boost("activation_choice", 0.9, "the model's output goes through a ReLU: negative scores are clipped to 0 "
                                          "and pass no gradient")
    if f.facts.get("dead_from_start"):
        s.boost("bad_init", 0.85, "the units were dead from the first record: initialisation (e.g. negative biases)")
        s.damp("lr_too_high", 0.3)     # dead before any large update was made
    elif "unnormalized_inputs" in ctx.found:   # huge pre-activations from unscaled inputs, not the LR
        s.boost("input_scaling", 0.85, "the inputs are far from zero mean / unit scale: the first updates of "
                                       "such huge pre-activations push units into the negative region")
    elif {"divergence", "loss_oscillation", "nan_inf", "exploding_gradients"} & ctx.symptoms:
        s.boost("lr_too_high", 0.8, "units died while the loss/gradients blew up: large updates pushed them into the "
                                    "negative region")
    elif ctx.updates_stayed_normal:
        s.boost("activation_choice", 0.7, f"units died during training with a normal update/weight ratio "
                                          f"({ctx.update_ratio:.2g}): ReLUs die where LeakyReLU/GELU would not")
    else:
        s.boost("lr_too_high", max(s.get("lr_too_high"), 0.6), "units died during training: large updates pushed "
                                                               "them into the negative region")


TRAINED_WELL = 0.05   # the model's final loss (validation's, else training's) over the training loss's first value
VAL_KEPT = 1.5        # ... with the validation loss ending within this factor of its best (no overfitting)


def settle(f, ctx):
    """Dead units short of almost all, in a model that trained well anyway (nothing else wrong,
    its final loss <= 5 % of the untrained one), are capacity it pays for and does not use: a
    note, not a warning. pytorch/examples' mnist at Adam 1e-3 with a cosine schedule had 54 % of
    fc1 dead at a validation loss of 0.0007; "reduce the LR 10x" ended at 0.59."""
    if f.severity != Severity.WARNING or ctx.another_warns(f):
        return True
    on_output = ctx.output_module is not None and ctx.output_module in f.layers   # predictions stuck at 0
    if f.facts.get("worst_dead", 1.0) < PARTLY_DEAD and not on_output and _still_improving(ctx.sig):
        # pytorch/examples' siamese_network at its defaults: 26-32 % of a 256-unit head dead, 73-76 % of
        # its outputs <= 0, validation loss still at its best at the end: "reduce the LR 10x" on 2 of 4
        # healthy seeds (trial 15)
        f.severity = Severity.INFO
        f.facts["still_improving"] = True
        f.title += " (the loss was still at its best when the run ended: sparse units, not a stalled run; a note)"
        return True
    well = trained_well(ctx.sig, ctx)
    if well is not None:
        f.severity = Severity.INFO
        f.facts["trained_well"] = well
        f.evidence.append(Evidence(
            series=well["series"], values=[round(well["first"], 6), round(well["end"], 6)],
            text=(f"the model trained well regardless: {well['series']} ended at {fmt(well['end'])}, "
                  f"{well['end'] / well['first']:.2%} of the untrained loss ({fmt(well['first'])}; a note below "
                  f"{TRAINED_WELL:.0%}): units it pays for and does not use, no convergence problem")))
    return True


PARTLY_DEAD = 0.5      # below this share of dead units the finding came from the outputs-<=-0 rule alone
BEST_AT_END = 1.02     # the last points within 2 % of the best ...
LAST_SHARE = 0.25      # ... and the best in the last quarter of the points


def _still_improving(sig) -> bool:
    """The validation loss (else the training loss, smoothed) was at its best at the end of the run."""
    loss = sig.val_loss if sig.val_loss is not None and len(sig.val_loss[2]) >= 4 else sig.train_loss
    if loss is None:
        return False
    steps, values = finite_prefix(*as_series(loss[1], loss[2]))
    if len(values) < 4:
        return False
    if loss is sig.train_loss:
        steps, values = smooth_curve(steps, values)
    best = int(np.argmin(values))
    return best >= (1 - LAST_SHARE) * (len(values) - 1) and float(values[-1]) <= BEST_AT_END * float(values[best])


def trained_well(sig, ctx, share: float = TRAINED_WELL) -> dict | None:
    """The final loss (validation's if logged, not overfitting) <= ``share`` of the untrained one."""
    if sig.train_loss is None:
        return None
    _, steps, values = sig.train_loss
    steps, values = finite_prefix(*as_series(steps, values))
    if len(values) < 5 or not values[0] > 0 or np.any(values < 0):
        return None
    first, series, end = ctx.untrained_loss(float(values[0])), sig.train_loss[0], tail_level(values)
    if sig.val_loss is not None:
        name, vs, vv = sig.val_loss
        vs, vv = finite_prefix(*as_series(vs, vv))
        if len(vv) == 0 or np.any(vv < 0):
            return None
        series, end = name, float(np.median(vv[-3:]))
        if end > VAL_KEPT * max(float(np.min(vv)), 1e-12):
            return None
    return {"series": series, "first": first, "end": end} if end <= share * first else None


SPEC = SymptomSpec(
    id="dead_units",
    looks_at="`act_dead_frac`, `act_frac_nonpos` of ReLU modules (or of Linear/Conv outputs before a functional "
             "F.relu); skipped when the input batches are constant or hold < 8 samples (`sys/batch_size`); a ReLU registered right after a Dropout that "
             "feeds it is judged less the Dropout's zeros where its p is known and <= 0.5, else by its dead units "
             "alone at >= 90 %",
    fires_when=">= 50 % units dead for a whole batch, or >= 70 % outputs <= 0 (DeepDiagnosis, ICSE'22) with "
               ">= 25 % dead (error from 90 %); a note when nothing else warns and the model trained well anyway (its "
               f"final loss, validation's if logged, <= {TRAINED_WELL:.0%} of the untrained training loss), or "
               f"fewer than {PARTLY_DEAD:.0%} dead (not on the output layer) and the loss (validation's if logged) at its "
               "best in the last quarter of the run",
    detect=detect,
    priors={"lr_too_high": 0.4, "bad_init": 0.3, "activation_choice": 0.3},
    word="dead units",
    adjust=adjust,
    settle=settle,
    needs=("activations",),
)
