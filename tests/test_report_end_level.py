"""The report's end level ("median of the last 10") of a run that blew up is not finite.

It took the last 10 *finite* points: a loss that went NaN at step 30 of 1000 showed the level
of steps 20-29 as its end, and the comparison table put the blown-up run level with a healthy one.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.app.report.content import run_summary
from trainspect.recorder import Recorder


def _summary(path, train, val):
    with Recorder(path) as rec:
        for step, (t, v) in enumerate(zip(train, val)):
            rec.log({"train/loss": float(t), "val/loss": float(v)}, step=step)
    with open_run(path) as run:
        return run_summary(run)[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_run_that_blew_up_ends_non_finite(tmp_path, seed):
    rng = np.random.default_rng(seed)
    train = np.r_[rng.uniform(0.5, 1.0, 30), np.full(200, np.nan)]
    val = np.r_[rng.uniform(0.5, 1.0, 30), np.full(200, np.inf)]
    metrics = _summary(tmp_path / "run.h5", train, val)
    assert math.isnan(metrics["train_end"]) and metrics["val_end"] == math.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_a_stray_nan_at_the_end_of_a_healthy_run_is_left_out(tmp_path, seed):
    rng = np.random.default_rng(seed)
    train = rng.uniform(0.1, 0.2, 100)
    train[-3] = np.nan
    metrics = _summary(tmp_path / "run.h5", train, train)
    assert metrics["train_end"] == pytest.approx(float(np.nanmedian(train[-10:])))
