"""``strong_dropout``: a Dropout that drops most of its inputs in training.

The recorder lists each Dropout's p at watch(); for older files and imported runs ``dropout.py``
reads p back from the Dropout's output statistics against its input's (zeros and second moment,
which must agree). A network whose
Dropout keeps fewer than 1 unit in 5 trains on a crippled copy of itself: its training loss stays
high and noisy while gradients, activations and the LR all look normal (no other rule fires), and
the validation loss (dropout off) often sits below it. A warning when the training loss ended above
half its initial level (or another finding says the loss stalled), a note otherwise.
"""
from __future__ import annotations

from ...findings import Evidence, Finding
from ..causes import dropout_too_strong
from ..dropout import AGREE, STRONG_DROPOUT, strong_dropouts
from ..series import finite_prefix, fmt, head_level, tail_level
from ..spec import SymptomSpec

HIGH_LOSS = 0.5     # the training loss ended above this fraction of its initial level: it did not learn much
STALLED = ("no_progress", "early_plateau", "slow_convergence")


def detect(sig, ctx):
    strong = strong_dropouts(ctx.dropout_rates)
    if not strong:
        return None
    names = [r.module for r in strong]
    worst = strong[0]
    # p listed at watch() needs no activation records (a compiled model, stats_every=0): the
    # finding then spans the training loss
    acts = sig.layer.get("act_frac_nonpos")
    steps = acts.steps if acts is not None and len(acts) else (
        sig.train_loss[1] if sig.train_loss is not None and len(sig.train_loss[1]) else [0])
    f = Finding(
        symptom="strong_dropout", severity="info", first_step=int(steps[0]), last_step=int(steps[-1]),
        title=f"dropout too strong: {ctx.label(worst.module)} drops ~{worst.p:.0%} of its inputs in training"
              + (f" (and {len(strong) - 1} more Dropout(s))" if len(strong) > 1 else ""),
        layers=names,
        evidence=[_evidence(r, ctx, acts is not None) for r in strong],
        facts={"dropout_p": {r.module: round(r.p, 3) for r in strong}},
    )
    if sig.train_loss is not None:
        name, s, v = sig.train_loss
        s, v = finite_prefix(s, v)
        if len(v) >= 20:
            init, end = head_level(v), tail_level(v)
            f.first_step, f.last_step = int(s[0]), int(s[-1])
            f.facts["loss_high"] = bool(init > 0 and end > HIGH_LOSS * init)
            text = f"{name} went from {fmt(init)} to {fmt(end)} (median of the last 10 %)"
            if sig.val_loss is not None:
                vname, vs, vv = sig.val_loss
                vs, vv = finite_prefix(vs, vv)
                if len(vv):
                    text += f"; {vname} (dropout off) ended at {fmt(tail_level(vv, min_points=1))}"
            f.evidence.append(Evidence(series=name, threshold=HIGH_LOSS, text=text, steps=[int(s[0]), int(s[-1])],
                                       values=[round(init, 4), round(end, 4)]))
    return f


def _evidence(r, ctx, acts: bool) -> Evidence:
    threshold = f"(threshold p >= {STRONG_DROPOUT:g}: Srivastava et al. 2014 keep 50-80 % of the units)"
    if r.source == "settings":
        return Evidence(series="act_frac_nonpos" if acts else "", layer=r.module if acts else None,
                        threshold=STRONG_DROPOUT, text=f"{ctx.label(r.module)}: {r.how(ctx.label)} {threshold}",
                        values=[round(r.p, 3)])
    return Evidence(
        series="act_frac_nonpos", layer=r.module, threshold=STRONG_DROPOUT,
        text=(f"{ctx.label(r.module)}: p ~{r.p:.2g} from its zeros against its input {ctx.label(r.input)}'s "
              f"(fraction <= 0: p + (1 - p) x the input's), {r.p_energy:.2g} from its second moment "
              f"(E[y^2] = E[x^2] / (1 - p)); the two agree within {AGREE:g} over {r.records} records {threshold}"),
        values=[round(r.p, 3), round(r.p_energy, 3)])


def adjust(s, f, ctx):
    dropout_too_strong(s, ctx)      # the Dropout and its p as the reason


def settle(f, ctx):
    """A warning when the training loss did not get far (ended above half its initial level, or a
    stalled-loss finding): the dropout is then what holds it up."""
    if f.facts.get("loss_high") or any(s in ctx.found for s in STALLED):
        f.severity = "warning"
    return True


SPEC = SymptomSpec(
    id="strong_dropout",
    looks_at="each Dropout's p in the metadata (older files: `act_frac_nonpos`, `act_mean`, `act_std` of Dropout "
             "modules and of the module registered before each, its input); training loss",
    fires_when=f"a Dropout's p, as set at watch() (older files: read back from its training-mode output (zeros: p + (1 - p) x the input's fraction "
               f"<= 0; second moment: E[x^2] / (1 - p); both must agree within {AGREE:g})), is >= {STRONG_DROPOUT:g} "
               "(Srivastava et al. 2014 keep 50-80 % of the units); a warning when the training loss ended above "
               f"{100 * HIGH_LOSS:.0f} % of its initial level or stalled, else info",
    detect=detect,
    priors={"dropout_too_strong": 0.9},
    word="high training loss",
    adjust=adjust,
    settle=settle,
    needs=(),      # p is listed at watch(): activation records are only needed for older files
)
