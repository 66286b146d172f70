"""A softmax at the end of forward() before cross_entropy: the loss cannot go below
log(1 + (C-1)/e) (1.461 for 10 classes), creeps towards it, and the run read "no problems found"
(a small CNN at 91 % accuracy instead of 99.6 %). A healthy loss scatters across that level."""
from __future__ import annotations

import math

import numpy as np
import pytest
from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.symptoms.softmax_floor import floor_for

from tests.test_advisor_causes import by_symptom, make

FLOOR = floor_for(10)


def test_the_floor_is_that_of_a_one_hot_probability():
    assert FLOOR == pytest.approx(1.4612, abs=1e-4)
    p = np.exp([1.0] + [0.0] * 9)
    assert -math.log(p[0] / p.sum()) == pytest.approx(FLOOR)


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_that_creeps_down_to_the_floor_is_named(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(500)
    loss = FLOOR + (math.log(10) - FLOOR) * np.exp(-t / 60) + np.abs(rng.normal(0, 0.04, t.size)) + 0.003
    loss[0] = math.log(10)
    f = by_symptom(diagnose_signals(make(loss)))["softmax_floor"]
    assert f.severity == "warning" and f.causes[0].id == "loss_setup"
    assert f.fixes[0].id == "logits_to_loss" and f.facts["classes"] == 10


@pytest.mark.parametrize("seed", range(3))
def test_a_healthy_loss_passing_or_resting_near_that_level_is_not(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(500)
    through = (0.2 + 2.1 * np.exp(-t / 80)) * rng.lognormal(0, 0.05, t.size)
    resting = (1.5 + 0.8 * np.exp(-t / 40)) * rng.lognormal(0, 0.05, t.size)   # a hard task's floor: batches dip below
    for loss in (through, resting):
        loss[0] = math.log(10)
        assert "softmax_floor" not in by_symptom(diagnose_signals(make(loss)))
