"""A warm-up longer than the run (warmup_steps > total steps: the LR climbs the whole run and
never reaches its value) read "info slow_convergence: train longer / raise the LR 10x", exit 0.
The schedule is the fault: a warning whose first fix says the warm-up never finished."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, lr_at):
    rng = np.random.default_rng(seed)
    with Recorder(path) as rec:
        for step in range(600):
            loss = 2.3 - 0.5 * (step / 600) ** 2 + 0.03 * rng.standard_normal()   # still falling, faster and faster
            rec.log({"loss": float(loss), "lr": float(lr_at(step))})
    return diagnose(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_up_that_never_ends_is_a_warning_with_the_schedule_first(tmp_path, seed):
    found = {f.symptom: f for f in _run(tmp_path / "r.h5", seed, lambda s: 6e-4 * (s + 1) / 10_000)}
    f = found["slow_convergence"]
    assert f.severity == "warning"
    assert f.fixes[0].id == "check_lr_schedule" and "warm-up never finished" in f.fixes[0].text
    assert "train_longer" not in [x.id for x in f.fixes]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_warm_up_that_ended_keeps_the_usual_advice(tmp_path, seed):
    found = {f.symptom: f for f in _run(tmp_path / "r.h5", seed, lambda s: 6e-4 * min(1.0, (s + 1) / 60))}
    f = found["slow_convergence"]
    assert f.severity == "info" and f.fixes[0].id == "train_longer"
    assert "warm-up never finished" not in " ".join(f.fix_texts)
