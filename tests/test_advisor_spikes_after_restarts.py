"""SGDR at a high peak LR: single-batch loss spikes a few steps after each warm restart (the LR
jumps 1000x back up) were blamed on "label noise (70 %)" on a dataset without any. Spikes right
after the LR jumped are the restarted LR's doing."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed, restarts):
    rng = np.random.default_rng(seed)
    period = 150
    with Recorder(path) as rec:
        for step in range(600):
            t = step % period if restarts else step
            lr = 1e-4 + 0.05 * 0.5 * (1 + np.cos(np.pi * t / (period if restarts else 600)))
            loss = 0.05 + 2.2 * np.exp(-step / 40) + 0.01 * abs(rng.standard_normal())
            if step in (160, 312, 455):
                loss += 1.9                       # a spike 10, 12 and 5 steps after a restart (150, 300, 450)
            rec.log({"loss": float(loss), "lr": float(lr)})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_right_after_lr_restarts_blame_the_lr(tmp_path, seed):
    f = _run(tmp_path / "r.h5", seed, restarts=True)["loss_spikes"]
    assert f.causes[0].id == "lr_too_high" and "restart" in f.causes[0].why


@pytest.mark.parametrize("seed", [0, 1])
def test_spikes_without_an_lr_jump_still_point_at_the_batches(tmp_path, seed):
    f = _run(tmp_path / "r.h5", seed, restarts=False)["loss_spikes"]
    assert f.causes[0].id == "label_noise"
