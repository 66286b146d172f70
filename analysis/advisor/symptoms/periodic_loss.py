"""``periodic_loss``: the training loss repeats the same pattern every N steps (every epoch).

The batches come in the same order every epoch (``data_order.py`` has the test and its reasons).
A warning where the pattern says the batches are grouped (long waves, a wide swing within the
epoch: a data set stored sorted, fed unshuffled); a note where only the order repeats.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import META_DISTRIBUTED, SYS_INPUT_MEAN

from ...findings import Evidence, Finding, Fix
from ..causes import RECURRENT_TYPES
from ..data_order import CONTRAST, MIN_PERIOD, MULTIPLES, NOISE_SIGMAS, PEAK, REPEAT, SMOOTH, WIDE_SWING, find_period, lr_cycles
from ..series import fmt
from ..spec import SymptomSpec


def detect(sig, ctx):
    main = ctx.loss_curve()
    if main is None or lr_cycles(ctx.lr_values):      # a restarting LR schedule repeats the loss too
        return None
    name, steps, values = main
    found = find_period(steps, values)
    if found is None or _same_batch_every_step(sig, found):
        return None
    period, grouped = found["period"], found["grouped"]
    peaks = found["peak_steps"]
    swing = float(np.exp(found["swing"])) if np.isfinite(found["swing"]) else None   # None: a signed loss
    shape = (f"it swings {swing:.1f}x within the cycle, in waves (neighbouring steps alike: "
             f"{found['smooth']:.2f}): batches grouped by class or source" if grouped else
             "the same batches in the same order, mixed (neighbouring steps unrelated)" if found["smooth"] < SMOOTH
             else f"a swing of {swing:.1f}x within the cycle" if swing is not None
             else "in waves, on a signed loss")
    return Finding(
        symptom="periodic_loss", severity="warning" if grouped else "info",
        title=f"the training loss repeats the same pattern every {period} steps: the batches come in the same "
              "order every epoch" + (", grouped" if grouped else ""),
        first_step=found["first_step"], last_step=found["last_step"],
        evidence=[Evidence(
            series=name, steps=peaks, values=found["peak_values"],      # points on the curve: the report circles them
            threshold=PEAK,
            text=f"the step-to-step changes of {name} correlate {found['peak']:.2f} with those {period} steps "
                 f"later and {found['repeat']:.2f} on average with those 1-{MULTIPLES} cycles later (thresholds "
                 f"{PEAK:g} and {REPEAT:g}; shuffled batches: ~0); the average cycle peaks at the same place "
                 f"(steps {', '.join(map(str, peaks))}); {shape}")],
        facts={"period": period, "grouped": grouped, "autocorrelation": round(found["peak"], 3),
               "at_multiples": round(found["repeat"], 3), "swing": None if swing is None else fmt(swing)})


def _same_batch_every_step(sig, found) -> bool:
    """Full-batch training (or one batch over and over): the recorded input statistics never
    change, so there is no data order to repeat; a periodic loss there is the optimisation's own
    cycle (an LR at the edge of stability), which the loss rules judge."""
    inputs = sig.scalars.get(SYS_INPUT_MEAN)
    if inputs is None:
        return False
    s, v = np.asarray(inputs[0]), np.asarray(inputs[1])
    v = v[(s >= found["first_step"]) & (s <= found["last_step"]) & np.isfinite(v)]
    return v.size >= 3 and bool(np.all(v == v[0]))


def fixes(f, ctx):
    """A language model read in order (truncated BPTT: the hidden state carries over from one
    batch to the next, pytorch/examples' word_language_model) repeats its epochs by design. A
    distributed run's usual reason is a DistributedSampler whose set_epoch() is never called."""
    dist = (ctx.sig.meta or {}).get(META_DISTRIBUTED)
    if isinstance(dist, dict) and (dist.get("world_size") or 0) > 1:
        return [Fix("distributed_sampler", "call sampler.set_epoch(epoch) at the start of every epoch: a "
                                           "DistributedSampler without it repeats the first epoch's order")]
    recurrent = any(m.type in RECURRENT_TYPES for m in ctx.sig.modules)
    if not (ctx.token_model and recurrent) or f.facts.get("grouped"):
        return []
    return [Fix("bptt_order_expected", "expected for a language model read in order with truncated BPTT (the hidden "
                                       "state carries over between batches): leave the order, or start each epoch "
                                       "at a random offset into the token streams")]


SPEC = SymptomSpec(
    id="periodic_loss",
    looks_at="training loss, step to step (log), and the LR schedule",
    fires_when=f"the autocorrelation of the log loss's step-to-step changes (n of them) is >= {PEAK:g} (and >= "
               f"{NOISE_SIGMAS:g}/sqrt(n), the noise of a short run) at a lag of >= "
               f"{MIN_PERIOD} steps, >= {CONTRAST:g} above its value half that lag away and >= {REPEAT:g} on "
               f"average over the lag's first {MULTIPLES} multiples, over >= 3 cycles; not with an LR that "
               "restarts, nor when the recorded inputs never change (full batch) (info); a warning when the "
               f"average cycle moves in waves (lag-1 autocorrelation >= {SMOOTH:g} and >= 2/sqrt(cycle)) over a "
               f"swing >= {np.exp(WIDE_SWING):.1f}x",
    detect=detect,
    priors={"unshuffled_data": 0.9},
    word="repeating pattern",
    fixes=fixes,
)
