"""Divergence on a loss that takes both signs.

REINFORCE (pytorch/examples) logs ``sum(-log_prob * normalised_return)``: it wanders around 0
with a spread that grows with the episode length, while the agent learns (running reward
10 -> 130). The advisor read its drift from -1.2 to 4.5 as "train/loss diverged, reduce the
LR 10x". A signed loss has no floor to measure progress against; its rise counts only beyond
a few times its own spread. A signed loss that truly blows up is still caught.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis.advisor.loss_rules import detect_divergence


def _policy_gradient_loss(seed, n=150):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    episode = 10 + 120 * t / n                       # episodes get longer as the policy learns
    drift = 5.0 * t / n - 1.0                        # the surrogate's level drifts up with them
    return drift + rng.standard_normal(n) * episode / 20


@pytest.mark.parametrize("seed", range(5))
def test_policy_gradient_surrogate_is_not_divergence(seed):
    values = _policy_gradient_loss(seed)
    assert (values < 0).mean() > 0.1
    assert detect_divergence(np.arange(len(values)), values) is None


@pytest.mark.parametrize("seed", range(5))
def test_a_signed_loss_that_blows_up_is_divergence(seed):
    rng = np.random.default_rng(seed)
    n = 200
    values = -1.0 + 0.8 * rng.standard_normal(n)     # a Gaussian NLL around -1 ...
    values[120:] += np.geomspace(1.0, 500.0, n - 120)   # ... that blows up
    finding = detect_divergence(np.arange(n), values)
    assert finding is not None and finding.symptom == "divergence"


@pytest.mark.parametrize("seed", range(3))
def test_an_unsigned_loss_keeps_its_old_rule(seed):
    # the same drift on a positive loss is still a rise of many times the progress made
    rng = np.random.default_rng(seed)
    n = 150
    values = np.r_[np.linspace(2.0, 0.5, 50), np.linspace(0.5, 3.0, n - 50)] * (1 + 0.05 * rng.standard_normal(n))
    assert detect_divergence(np.arange(n), values) is not None
