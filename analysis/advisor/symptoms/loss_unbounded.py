"""``loss_unbounded``: the training loss fell without bound, to orders of magnitude below zero.

A loss that should stay near or above zero (cross-entropy, BCE + KL, MSE) running to -1e21 is an
objective with no minimum: a term with the wrong sign (pytorch/examples' VAE with ``KLD = -KLD``
went +40 -> -2.3e21 in 300 steps), a log-likelihood maximised where it should be minimised, or a
learned variance whose -log(sigma) has nothing to hold it. Its growing gradients were read as
"bad init 80%" and its wobbles as "label noise" (trial 15, F1). A Gaussian NLL that settles at -2.5
is a loss that may be negative: it is judged by how far below its first level it runs, not by
its sign.
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding
from ..series import finite_prefix, fmt, head_level
from ..spec import SymptomSpec

RUNAWAY = 1000.0      # the loss went below -RUNAWAY x the size of its first level
MIN_POINTS = 5
LOGIT_SLACK = 1.5     # -nll_loss(logits) <= max|logit| exactly; the slack covers dropout and sampled records


def detect(sig, ctx):
    if sig.train_loss is None or sig.rewards:   # an RL loss follows the advantages: any sign, any scale
        return None
    name, steps, values = sig.train_loss
    steps, values = finite_prefix(np.asarray(steps), np.asarray(values, dtype=np.float64))
    if len(values) < MIN_POINTS:
        return None
    first = head_level(values)
    low = int(np.argmin(values))
    scale = max(abs(first), 1e-3)
    if values[low] >= -RUNAWAY * scale:
        return None
    below = np.flatnonzero(values < 0)
    logits = _loss_is_minus_a_logit(name, steps, values, first, sig, ctx)
    return Finding(
        symptom="loss_unbounded", severity="error", first_step=int(steps[below[0]]), last_step=int(steps[-1]),
        title=f"{name} fell without bound: from {fmt(first)} to {fmt(float(values[low]))} at step {int(steps[low])}",
        evidence=[Evidence(
            series=name, steps=[int(steps[0]), int(steps[below[0]]), int(steps[low])], threshold=-RUNAWAY,
            values=[float(first), float(values[below[0]]), float(values[low])],
            text=(f"{name} started at {fmt(first)}, went below 0 at step {int(steps[below[0]])} and reached "
                  f"{fmt(float(values[low]))}, {abs(values[low]) / scale:.2g}x its first level below zero (threshold "
                  f"{RUNAWAY:g}x): the objective has no minimum, so every step can lower it further"))]
        + ([logits] if logits is not None else []),
        facts={"lowest": float(values[low]), "first": float(first), "nll_on_logits": logits is not None})


def _loss_is_minus_a_logit(name, steps, values, first, sig, ctx) -> Evidence | None:
    """``F.nll_loss``/``NLLLoss`` fed raw logits (pytorch/examples' mnist without its
    ``log_softmax``): the loss is -mean(logit of the target), so it starts near minus the
    untrained scores (|first| within their absmax), and as training pushes the target logits up
    it falls with them, never below -max|logit|. Evidence when the output layer has no squashing
    activation, C >= 2 outputs, and over the runaway -loss stays within the output layer's
    absmax while being >= a tenth of it (the loss follows the logits, not a term beside them);
    None otherwise (a VAE's flipped KL runs far past its Sigmoid decoder's output scale)."""
    out = ctx.initial_output
    absmax = sig.layer.get("act_absmax")
    if out is None or absmax is None or out[0] not in absmax.layers or ctx.output_activation \
            or (ctx.n_outputs or 0) < 2:
        return None
    a_steps = np.asarray(absmax.steps)
    a = absmax.columns([list(absmax.layers).index(out[0])])[:, 0].astype(np.float64)
    at = np.searchsorted(steps, a_steps)
    ok = (at < len(steps)) & np.isfinite(a) & (a > 0)
    ok[ok] &= steps[at[ok]] == a_steps[ok]
    if ok.sum() < MIN_POINTS or abs(first) > LOGIT_SLACK * a[ok][0]:
        return None
    loss, scale = values[at[ok]], a[ok]
    deep = loss < -10 * max(abs(first), 1e-3)            # the runaway part, not the first steps
    if deep.sum() < MIN_POINTS:
        return None
    ratio = -loss[deep] / scale[deep]
    if np.mean((ratio <= LOGIT_SLACK) & (ratio >= 0.1)) < 0.8:
        return None
    return Evidence(
        series=name, steps=[int(steps[at[ok]][deep][0]), int(steps[at[ok]][deep][-1])],
        values=[float(np.median(ratio))],
        text=(f"the loss is minus the model's scores: it started at {fmt(first)}, within the untrained outputs' "
              f"absmax ({fmt(float(scale[0]))}, {out[0]}, {ctx.n_outputs} outputs, no softmax module), and fell with "
              f"them: -loss / the outputs' absmax stayed at {float(np.median(ratio)):.2g} (0.1-1) over the runaway: "
              "a negative log-likelihood fed logits instead of log-probabilities has no minimum"))


def adjust(s, f, ctx):
    if f.facts.get("nll_on_logits"):
        s.boost("nll_on_logits", 0.97, "the loss is minus the model's raw scores and falls as they grow: "
                                       "nll_loss/NLLLoss was fed logits, not log_softmax outputs")
        s.damp("loss_sign", 0.5)


SPEC = SymptomSpec(
    id="loss_unbounded",
    looks_at="training loss; the output layer's `act_absmax`, size and activation",
    fires_when=f"the training loss reached below -{RUNAWAY:g}x the size of its first level (error); nll_loss fed "
               "logits is named when -loss stays within 0.1-1.5x the raw output layer's absmax over the runaway",
    detect=detect,
    priors={"loss_sign": 0.9},
    word="runaway loss",
    adjust=adjust,
    needs=("loss",),
)
