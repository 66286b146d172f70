"""``overfitting``: validation loss rose well above its best while the training loss kept falling."""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding, Fix
from .. import loss_rules
from ..series import as_series, finite_prefix, fmt, rounded, tail_level
from ..spec import SymptomSpec
from ..update_scale import adaptive, too_large_text, usual_ratio


def detect(sig, ctx):
    if sig.val_loss is None or sig.rewards:
        return None
    vname, vs, vv = sig.val_loss
    t = sig.train_loss
    names = {"train_series": t[0] if t else "train loss", "val_series": vname}
    # never generalised first: the more specific reading of a validation loss that also rose
    return (loss_rules.detect_no_generalisation(t[1] if t else None, t[2] if t else None, vs, vv, **names)
            or loss_rules.detect_overfitting(t[1] if t else None, t[2] if t else None, vs, vv, **names)
            or short_validation_gap(t, vs, vv, vname))


SHORT_VAL = (5, 10)     # validation points: fewer than overfitting's 10, too few to tell a rise from noise
SHORT_RISE = 0.08       # the last SHORT_LAST points all >= 8 % above the lowest earlier one
SHORT_LAST = 3
TRAIN_FALL = 0.2        # while the training loss fell >= 20 % further from that point on


def short_validation_gap(t, vs, vv, vname):
    """A note (info) for 5-9 validation points: the last 3 all >= 8 % above the lowest before them,
    rising to the end, while the training loss fell >= 20 % further from that point on. Trial 18 U11: a
    frozen backbone's head, val loss 0.92 -> 1.02 over 8 epochs while the training loss fell
    0.6 -> 0.13 (val accuracy 0.62 against 0.97), was silent: too few points for the overfitting
    rule, whose warning needs 10. Too few to warn on; a note, so the gap is said."""
    if t is None:
        return None
    vs, vv = finite_prefix(*as_series(vs, vv))
    ts, tv = finite_prefix(*as_series(t[1], t[2]))
    if not SHORT_VAL[0] <= len(vv) < SHORT_VAL[1] or len(tv) < 20:
        return None
    j = int(np.argmin(vv[:-SHORT_LAST]))
    best, last = float(vv[j]), vv[-SHORT_LAST:]
    if not best > 0 or not np.all(last >= (1 + SHORT_RISE) * best) or vv[-1] < np.max(vv[:-1]) * 0.99:
        return None
    near = tv[(ts >= vs[max(0, j - 1)]) & (ts <= vs[min(len(vs) - 1, j + 1)])]
    if near.size == 0:
        return None
    t_best, t_end = float(np.median(near)), tail_level(tv)
    if not (t_end > 0 and t_end <= (1 - TRAIN_FALL) * t_best):
        return None
    rise = float(vv[-1]) / best - 1
    return Finding(
        symptom="overfitting", severity="info",
        title=f"generalisation gap: {vname} up {rise:.0%} since step {int(vs[j])} while {t[0]} fell "
              f"{1 - t_end / t_best:.0%} (a note: {len(vv)} evaluations, too few for the overfitting warning)",
        first_step=int(vs[j]), last_step=int(vs[-1]),
        evidence=[Evidence(series=vname, steps=[int(vs[j]), int(vs[-1])], values=rounded([best, float(vv[-1])]),
                           threshold=SHORT_RISE,
                           text=f"{vname} rose from {fmt(best)} at step {int(vs[j])} to {fmt(float(vv[-1]))}; its "
                                f"last {SHORT_LAST} evaluations all >= {SHORT_RISE:.0%} above that, over {len(vv)} "
                                f"evaluations (the overfitting warning needs {SHORT_VAL[1]})"),
                  Evidence(series=t[0], steps=[int(vs[j]), int(ts[-1])], values=rounded([t_best, t_end]),
                           text=f"meanwhile {t[0]} fell from {fmt(t_best)} to {fmt(t_end)} (threshold -{TRAIN_FALL:.0%})")],
        facts={"best_step": int(vs[j]), "best_value": best, "short_validation": True})


HUGE_UPDATES = 0.02     # SGD: a median update/weight ratio twice the advisor's "far above ~1e-3" (Adam: ctx.ratio_high)


def adjust(s, f, ctx):
    if f.facts.get("never_generalised"):
        s.boost("label_noise", 0.85, "the validation loss never left the untrained level while the training loss "
                                     "fell: labels that do not go with their inputs, or validation data unlike "
                                     "the training data")
        s.damp("insufficient_regularization", 0.3)
    elif ctx.train_loss_near_zero:
        s.boost("label_noise", 0.35, "the training loss reached ~0: the model memorises its training set, noisy "
                                     "labels included")
    if adaptive(ctx.optimizer) and ctx.ratio_high:    # an Adam step is ~lr a weight: ~1e-2 is usual
        # GCN at 100x its LR (Adam, lr 1): 10 % of the weights per step, validation loss up 125 % from
        # step 8, and the causes named regularisation, input scaling and labels, never the LR (trial 14)
        s.boost("lr_too_high", 0.75, f"{too_large_text(ctx)}: steps that size throw the weights past the point "
                                     "where the validation loss was lowest")
    elif not adaptive(ctx.optimizer) and ctx.update_ratio is not None and ctx.update_ratio > HUGE_UPDATES:
        s.boost("lr_too_high", 0.75, f"each update moved the weight matrices {ctx.update_ratio:.1%} of their size "
                                     f"(median update/weight ratio; {usual_ratio(ctx.optimizer)}): "
                                     "steps that size throw the weights past the point where the validation loss "
                                     "was lowest")


SMALL_TO_START = 0.05   # a validation loss ending below this share of the untrained loss: generalising well


def settle(f, ctx):
    """A validation loss that rose from a tiny best and still ends near zero is a note: GCN at a
    high LR went 0.016 -> 0.043 against an untrained 1.95, at 99.5-100 % validation accuracy,
    and got a warning to add regularisation (trial 14)."""
    if f.facts.get("never_generalised") or f.severity != "warning" or ctx.sig.train_loss is None:
        return True
    first = first_loss(ctx)
    end = f.evidence[0].values[-1] if f.evidence and f.evidence[0].values else None
    if first and end is not None and 0 <= end <= SMALL_TO_START * first:
        f.severity = "info"
        f.title += f" (it still ends at {end / first:.1%} of the untrained loss: a note)"
        f.facts["still_small"] = True
    return True


def first_loss(ctx) -> float | None:
    """The untrained loss (``Context.untrained_loss`` of the training loss's first finite value)."""
    v = np.asarray(ctx.sig.train_loss[2], dtype=np.float64)
    v = v[np.isfinite(v)]
    return ctx.untrained_loss(float(v[0])) if v.size and v[0] > 0 else None


def fixes(f, ctx):
    if f.facts.get("never_generalised"):
        return [Fix("check_pairing", "check that each input still goes with its label (shuffled or indexed "
                                     "apart?) and that the validation set is built like the training set")]
    # same id as "stop early at the best validation step": the checkpoint says it already
    step = f.facts.get("best_step", f.first_step)
    if step is None:
        return []
    return [Fix("early_stop", f"keep the checkpoint from step {step} (lowest validation loss logged)")]


SPEC = SymptomSpec(
    id="overfitting",
    looks_at="validation vs training loss",
    fires_when="val loss > best +10 % and > best + 3 robust sigmas (second differences) for the last 3 (>= 10 %) "
               "evaluations, training loss not rising; or val loss never below 95 % of the untrained training "
               "loss and ending above its first value while the training loss fell >= 5 %; a note when it still ends "
               "below 5 % of the untrained loss; a note for 5-9 evaluations whose last 3 are all >= 8 % above the "
               "lowest before them, rising to the end, while the training loss fell >= 20 % further from there",
    detect=detect,
    priors={"insufficient_regularization": 0.7, "label_noise": 0.25},
    word="overfitting",
    adjust=adjust,
    fixes=fixes,
    settle=settle,
    needs=("validation_loss",),
)
