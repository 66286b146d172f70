"""Curriculum learning: harder data enters at steps 200 and 400, the loss jumps and decays back
over ~20 steps. Its points on the way down crossed the spike rule's absolute height test up and
down and read as "WARN loss_spikes: spiked 3 times". An excursion is delimited by the relative
test alone: 20 points above the recent level are not a spike."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis.advisor.loss_rules import detect_spikes


def _curriculum(seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(600)
    loss = 2.3 * np.exp(-steps / 30) + 0.03
    for start, height in ((200, 4.8), (400, 3.9)):
        after = steps >= start
        loss[after] += height * np.exp(-(steps[after] - start) / 6.0)
    return steps, loss * np.exp(0.25 * rng.standard_normal(600))


@pytest.mark.parametrize("seed", range(5))
def test_a_jump_that_decays_over_many_steps_is_not_a_spike(seed):
    assert detect_spikes(*_curriculum(seed)) is None


@pytest.mark.parametrize("seed", range(5))
def test_single_bad_batches_are_still_spikes(seed):
    steps, loss = _curriculum(seed)
    loss = 2.3 * np.exp(-steps / 30) + 0.03 + 0.005 * np.random.default_rng(seed).standard_normal(600)
    for at in (120, 300, 520):
        loss[at] += 2.0
    f = detect_spikes(steps, loss)
    assert f is not None and sorted(f.evidence[0].steps) == [120, 300, 520]
