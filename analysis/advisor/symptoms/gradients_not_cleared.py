"""``gradients_not_cleared``: updates that used a gradient still holding the previous update's.

The recorder measures it (``sys/grad_carried``): before each backward it notes whether one
parameter's ``.grad`` was reset since the last update. Never reset means ``zero_grad()`` is
missing (or a hand-written ``w -= lr * w.grad`` has no ``w.grad = None``): every step adds all
the earlier gradients again. From the curves alone this reads as an LR too high, and lowering
the LR does not cure it (pytorch/examples-style hand-written loops, trial 13).
"""
from __future__ import annotations

from trainspect.recorder.format import SYS_GRAD_CARRIED

from ...findings import Evidence, Finding, Fix
from ..spec import SymptomSpec


def detect(sig, ctx):
    c = ctx.grads_carried
    if not c or not c["carried_most"]:
        return None
    n, m = c["carried"], c["updates"]
    return Finding(
        symptom="gradients_not_cleared", severity="error",
        title=f"the gradients are never cleared: {n} of {m} updates used a gradient that still held the "
              "previous update's",
        first_step=c["first"], last_step=c["last"],
        evidence=[Evidence(series=SYS_GRAD_CARRIED, steps=[c["first"], c["last"]], values=[float(n)],
                           text=f"before the backward passes of {n} of {m} updates, .grad of {ctx.label(c['probe'])} "
                                "was neither None nor zero: each step's gradient is added to all the earlier ones")],
        facts={"carried": n, "updates": m, "optimizer": bool(ctx.optimizer)})


def fixes(finding, ctx):
    if finding.facts.get("optimizer"):
        return [Fix("zero_grad", "call optimizer.zero_grad() once per iteration, before loss.backward() "
                                 "(with gradient accumulation: after each optimizer.step())")]
    return [Fix("zero_grad", "after each update, clear every parameter's gradient: p.grad = None (or "
                             "p.grad.zero_()), or call model.zero_grad()")]


SPEC = SymptomSpec(
    id="gradients_not_cleared",
    looks_at="`sys/grad_carried` (the recorder notes, before each backward, whether one parameter's "
             "`.grad` was reset since the last update)",
    fires_when="at least 3 updates, and most of them, used a gradient never reset since the previous update "
               "(error: a bug, never a setting)",
    detect=detect,
    priors={"optimizer_setup": 0.97},
    word="accumulation of the gradients",
    fixes=fixes,
)
