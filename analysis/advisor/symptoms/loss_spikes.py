"""``loss_spikes``: isolated points far above the recent level that the curve comes back from."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from .. import gradient_rules, loss_rules
from ..causes import lr_from_update_ratio
from ..spec import SymptomSpec
from ..update_scale import usual_ratio


def detect(sig, ctx):
    f = ctx.on_loss_curve(loss_rules.detect_spikes)
    if f is None:
        return None
    _, s, v = ctx.loss_curve()
    idx = np.searchsorted(s, f.evidence[0].steps)
    nxt = np.clip(idx + 1, 0, len(v) - 1)
    f.facts["isolated"] = bool(np.all(v[nxt] < 0.5 * v[idx]))     # each spike lasts a single point
    total = sig.scalars.get(SYS_GRAD_NORM)
    if total is not None:
        ev = gradient_rules.grad_spike_evidence(f.evidence[0].steps, *total)
        if ev is not None:
            f.evidence.append(ev)
    return f


THROWN = 0.2     # an update of a fifth of the weights in one step (healthy runs here peak <= 0.08)


def adjust(s, f, ctx):
    lr_from_update_ratio(s, ctx, boost_high=True)
    jumps = _after_lr_jumps(f.evidence[0].steps, ctx) if f.evidence else 0
    if "loss_oscillation" in ctx.found or "divergence" in ctx.found:
        s.boost("lr_too_high", 0.8, "the spikes come with oscillation/divergence of the loss level")
    elif jumps:
        s.boost("lr_too_high", 0.8, f"{jumps} of the spikes came within {AFTER_JUMP} steps of the LR jumping >= "
                                    f"{LR_JUMP:g}x (a warm restart or a new warm-up): the restarted LR is too high")
    elif ctx.input_outliers:
        s.boost("input_scaling", 0.8, "the recorded inputs had outlier batches")
    elif (ctx.update_ratio_peak or 0.0) > THROWN:
        # SGD at lr 1.5: spikes a step apart read as "bad batches" beside dead units blamed on the LR
        s.boost("lr_too_high", 0.8, f"the updates reached {ctx.update_ratio_peak:.2g} of the weights in a step "
                                    f"({usual_ratio(ctx.optimizer)}): the optimiser throws the weights around")
    elif f.facts.get("isolated") and not ctx.ratio_high:
        s.boost("label_noise", 0.7, "each spike is a single batch the model recovers from at once: bad or "
                                    "mislabelled samples rather than an unstable optimiser")


LR_JUMP = 10.0        # an LR that rose this much within one record: a warm restart (SGDR), a new warm-up
AFTER_JUMP = 20       # a spike this many steps after such a jump is the LR's doing, not a bad batch's


def _after_lr_jumps(spike_steps, ctx) -> int:
    """How many spikes came within ``AFTER_JUMP`` steps after the LR rose ``LR_JUMP``x at once."""
    s, v = ctx.lr_steps, ctx.lr_values
    if s is None or len(v) < 2:
        return 0
    jumps = s[1:][v[1:] >= LR_JUMP * v[:-1]]
    if not jumps.size:
        return 0
    spikes = np.asarray(spike_steps)
    before = np.searchsorted(jumps, spikes, side="right") - 1      # the last jump at or before each spike
    ok = before >= 0
    return int(np.sum(spikes[ok] - jumps[before[ok]] <= AFTER_JUMP))


SPEC = SymptomSpec(
    id="loss_spikes",
    looks_at="training loss, raw; `sys/grad_norm` at the same steps (ZClip z-score, evidence only)",
    fires_when="point > 3x the 90th percentile of the previous 20 points and > 0.5x initial level above it, back "
               "within 3 points (Megatron-style \"loss far above recent level\"); 1 spike = info",
    detect=detect,
    priors={"lr_too_high": 0.4, "label_noise": 0.35, "input_scaling": 0.25, "numerical_instability": 0.2},
    word="spikes",
    adjust=adjust,
    needs=("loss",),
)
