"""Reinforcement-learning runs (pytorch/examples' actor_critic and reinforce): the loss grows
with the episodes' returns while the reward climbs. Read as a training loss, a healthy run was
"ERROR divergence: reduce the LR 10x". A run that logs rewards has its losses left unjudged, and
says so; a loss named as the training loss is judged as before; a NaN is still a NaN."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.coverage import coverage
from trainspect.recorder import Recorder


def _actor_critic_run(path, seed, *, reward=True, roles=None, nan_at=None):
    rng = np.random.default_rng(seed)
    n = 300
    steps = np.arange(n)
    returns = 10 + 265 / (1 + np.exp(-(steps - 150) / 25))          # the episodes get longer
    loss = 0.02 * returns * rng.lognormal(0, 0.4, n)                 # a value loss grows with them
    if nan_at is not None:
        loss[nan_at:] = np.nan
    with Recorder(path, roles=roles) as rec:
        metrics = {"train/loss": loss}
        if reward:
            metrics |= {"episode_reward": returns * rng.uniform(0.8, 1.2, n), "running_reward": returns}
        rec.log_many(metrics, steps=steps)
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rl_losses_are_not_judged_and_coverage_says_why(tmp_path, seed):
    path = _actor_critic_run(tmp_path / "ac.h5", seed)
    with open_run(path) as run:
        found = diagnose(run)
        gaps = coverage(run).gaps
    assert not [f.symptom for f in found if f.severity != "info"], [f.title for f in found]
    assert gaps[0].missing == "loss curve not judged" and "episode_reward" in gaps[0].text
    assert "validation_loss" not in [g.instrument for g in gaps]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_curve_without_rewards_or_with_a_named_loss_is_judged(tmp_path, seed):
    for name, kwargs in (("plain", {"reward": False}), ("named", {"roles": {"train": "train/loss"}})):
        with open_run(_actor_critic_run(tmp_path / f"{name}.h5", seed, **kwargs)) as run:
            assert "divergence" in [f.symptom for f in diagnose(run)], name


def test_a_nan_loss_of_an_rl_run_is_still_reported(tmp_path):
    with open_run(_actor_critic_run(tmp_path / "nan.h5", 0, nan_at=200)) as run:
        assert "nan_inf" in [f.symptom for f in diagnose(run)]
