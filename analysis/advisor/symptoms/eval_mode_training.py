"""``eval_mode_training``: optimizer steps whose forward ran with the model in eval mode.

The recorder marks them (``sys/eval_mode_step``): ``model.eval()`` for validation and no
``model.train()`` after it, so dropout is off and batch norm uses (and stops updating) its
running statistics for the rest of the training. Deliberate in rare recipes; a bug in most.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_EVAL_MODE

from ...findings import Evidence, Finding
from ..spec import SymptomSpec


def detect(sig, ctx):
    series = sig.scalars.get(SYS_EVAL_MODE)
    if series is None or not len(series[0]):
        return None
    steps = np.asarray(series[0])
    first, last, n = int(steps.min()), int(steps.max()), len(steps)
    return Finding(
        symptom="eval_mode_training", severity="warning",
        title=f"{n} training step(s) ran with the model in eval mode, from step {first}",
        first_step=first, last_step=last,
        evidence=[Evidence(series=SYS_EVAL_MODE, steps=[first, last], values=[float(n)],
                           text=f"the forward of {n} optimizer step(s) ran in eval mode (steps {first}-{last}): "
                                "dropout off, batch norm on its running statistics")],
        facts={"steps": n})


SPEC = SymptomSpec(
    id="eval_mode_training",
    looks_at="`sys/eval_mode_step` (the recorder marks optimizer steps whose forward ran in eval mode)",
    fires_when="any optimizer step whose only grad-enabled forward ran with the model in eval mode (warning)",
    detect=detect,
    priors={"train_mode_off": 0.95},
    word="eval-mode steps",
)
