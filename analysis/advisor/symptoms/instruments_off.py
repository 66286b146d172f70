"""``instruments_off``: a per-layer instrument failed during the run and the recorder switched
every instrument off (``sys/instruments_off``); training and ``log()`` went on. The gradient,
weight, activation and step-time records stop at that step: what the advisor says of the layers
only covers the steps before it, and the heatmaps end there."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_INSTRUMENTS_OFF

from ...findings import Evidence, Finding
from ..spec import SymptomSpec


def detect(sig, ctx):
    series = sig.scalars.get(SYS_INSTRUMENTS_OFF)
    if series is None or not len(series[0]):
        return None
    step = int(np.min(series[0]))
    return Finding(
        symptom="instruments_off", severity="info",
        title=f"the recorder's per-layer instruments failed at step {step} and were switched off: layer records "
              "end there",
        first_step=step, last_step=step,
        evidence=[Evidence(series=SYS_INSTRUMENTS_OFF, steps=[step], values=[1.0],
                           text=f"an instrument raised at step {step}; the recorder warned in the training "
                                "process's output (RecorderWarning) with the exception, and logged values went on")],
        facts={"step": step})


SPEC = SymptomSpec(
    id="instruments_off",
    looks_at="`sys/instruments_off` (the recorder marks the step where a failing instrument switched all off)",
    fires_when="the mark is present (info): the layer records end at that step",
    detect=detect,
    priors={"instrument_failure": 0.9},
    word="gap in the layer records",
)
