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

MILD_SWING = float(np.log(1.3))   # a swing of 1.3x within the cycle, in waves: grouped when validation says so
FORGOTTEN = 1.5                  # validation loss over the training loss's lowest in the last cycle


def detect(sig, ctx):
    main = ctx.loss_curve()
    if main is None or lr_cycles(ctx.lr_values):      # a restarting LR schedule repeats the loss too
        return None
    name, steps, values = main
    found = find_period(steps, values)
    if found is None or _same_batch_every_step(sig, found):
        return None
    period, grouped = found["period"], found["grouped"]
    forgets = None if grouped else _grouped_and_forgotten(sig, ctx, found, values)
    grouped = grouped or forgets is not None
    peaks = found["peak_steps"]
    swing = float(np.exp(found["swing"])) if np.isfinite(found["swing"]) else None   # None: a signed loss
    shape = (f"it swings {swing:.1f}x within the cycle, in waves (neighbouring steps alike: "
             f"{found['smooth']:.2f}): batches grouped by class or source" if grouped else
             "the same batches in the same order, mixed (neighbouring steps unrelated)" if found["smooth"] < SMOOTH
             else f"a swing of {swing:.1f}x within the cycle" if swing is not None
             else "in waves, on a signed loss")
    f = Finding(
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
    if forgets is not None:
        val_name, end, low = forgets
        f.evidence.append(Evidence(
            series=val_name, threshold=FORGOTTEN, values=[round(end, 6), round(low, 6)],
            text=f"{val_name} ended at {fmt(end)}, {end / low:.1f}x the {fmt(low)} the training loss reached within its "
                 f"last cycle (threshold {FORGOTTEN:g}x): what the model fits on the group it sees now it loses on the "
                 "others"))
    return f


def _grouped_and_forgotten(sig, ctx, found, values):
    """(validation loss name, its last value, the training loss's minimum over the last cycle)
    when a pattern in waves (neighbouring batches alike: grouped) with a swing >= MILD_SWING,
    narrower than ``grouped``'s, comes with a validation loss >= FORGOTTEN x what the training
    loss reached within its last cycle; else None. Lightning on digits sorted by class, never
    shuffled (trial 17, F2): swing 1.5x, validation 0.94 against 0.19 shuffled, read as a note.
    Batches of unrelated difficulty (a fixed but mixed order) have no waves; a language model read
    in order (truncated BPTT) stays a note."""
    lag = found["lag"]
    if not np.isfinite(found["swing"]) or found["swing"] < MILD_SWING \
            or found["smooth"] < max(SMOOTH, 2 / np.sqrt(lag)) or sig.val_loss is None:
        return None
    if ctx.token_model and any(m.type in RECURRENT_TYPES for m in sig.modules):
        return None
    val = np.asarray(sig.val_loss[2], dtype=np.float64)
    val = val[np.isfinite(val)]
    last = np.asarray(values, dtype=np.float64)[-lag:]
    last = last[np.isfinite(last)]
    if not val.size or not last.size or last.min() <= 0 or val[-1] < FORGOTTEN * last.min():
        return None
    return sig.val_loss[0], float(val[-1]), float(last.min())


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
               f"swing >= {np.exp(WIDE_SWING):.1f}x, or over a swing >= {np.exp(MILD_SWING):.1f}x with a validation loss "
               f"ending >= {FORGOTTEN:g}x the training loss's lowest in its last cycle (not a recurrent language model)",
    detect=detect,
    priors={"unshuffled_data": 0.9},
    word="repeating pattern",
    fixes=fixes,
)
