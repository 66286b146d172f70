"""``return_not_improving`` (trial 18 U5): a reinforcement-learning run's return is judged.

The advisor knew the RL signal (episode_reward, rollout/ep_rew_mean, charts/episodic_return) and
left the policy-gradient losses alone, but never looked at the return: an agent whose reward was
-0.30 in all 300 episodes, a PPO log flat at ~9.5 for 400 updates and one whose return rose
10 -> 200 then collapsed to ~15 while approx_kl jumped 30x all read "no problems found". Healthy
runs (a noisy rising return, one at its best after a few episodes, a dip that recovers) stay quiet.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _run(path, series: dict):
    n = len(next(iter(series.values())))
    with Recorder(path, name=path.stem) as rec:
        for i in range(n):
            rec.log({k: float(v[i]) for k, v in series.items()}, step=i)
    return path


def _found(path):
    with open_run(path) as r:
        return [f for f in diagnose(r) if f.severity in ("warning", "error")]


def _return_finding(path):
    return next((f for f in _found(path) if f.symptom == "return_not_improving"), None)


def test_a_constant_reward_is_a_sparse_reward(tmp_path):
    n = 300
    f = _return_finding(_run(tmp_path / "sparse.h5", {
        "loss": 0.08 + 0.001 * np.random.default_rng(0).random(n), "episode_reward": np.full(n, -0.3),
        "running_reward": np.full(n, -0.3), "episode_length": np.full(n, 30.0)}))
    assert f is not None and f.facts["kind"] == "constant"
    assert "never sees a different reward" in f.title
    assert f.causes[0].id == "sparse_reward"
    ids = [x.id for x in f.fixes]
    assert ids[:4] == ["reward_shaping", "more_exploration", "curriculum", "check_env_reward"]


@pytest.mark.parametrize("seed", range(4))
def test_a_flat_noisy_return_never_improved(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 400
    f = _return_finding(_run(tmp_path / "flat.h5", {"rollout/ep_rew_mean": 9.5 + rng.normal(0, 1.0, n),
                                                     "train/value_loss": 0.2 + 0.05 * rng.random(n)}))
    assert f is not None and f.facts["kind"] == "flat"
    assert f.causes[0].id == "sparse_reward"
    assert "lr_range_test" not in [x.id for x in f.fixes]


@pytest.mark.parametrize("seed", range(4))
def test_a_policy_collapse_names_the_lr_and_cites_approx_kl(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n, t = 400, np.arange(400)
    ret = np.where(t < 200, 10 + 190 * t / 200, 200 - 185 * (1 - np.exp(-(t - 200) / 20))) + rng.normal(0, 8, n)
    f = _return_finding(_run(tmp_path / "collapse.h5", {
        "rollout/ep_rew_mean": ret, "train/approx_kl": np.where(t < 200, 0.01, 0.3) * (1 + 0.1 * rng.random(n))}))
    assert f is not None and f.facts["kind"] == "collapse" and "policy collapse" in f.title
    assert f.facts["policy_jump"] == ["train/approx_kl"]
    assert any(e.series == "train/approx_kl" for e in f.evidence)
    assert f.causes[0].id == "lr_too_high"
    ids = [x.id for x in f.fixes]
    assert ids[0] == "lower_lr" and "smaller_policy_steps" in ids and "normalize_advantages" in ids
    assert "lr_range_test" not in ids and "lr_warmup" not in ids     # a loss-vs-LR sweep says nothing of a return
    # without approx_kl logged it is still a collapse, the LR still first
    f = _return_finding(_run(tmp_path / "collapse2.h5", {"charts/episodic_return": ret}))
    assert f is not None and f.facts["kind"] == "collapse" and f.causes[0].id == "lr_too_high"


@pytest.mark.parametrize("seed", range(6))
def test_healthy_noisy_returns_stay_quiet(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n, t = 400, np.arange(400)
    curves = {
        # CartPole-like: a noisy rise with heavy-tailed episodes
        "rising": 20 + 180 * (1 - np.exp(-t / 120)) + rng.standard_t(3, n) * 30,
        # a weak trend under noise as large as the gain
        "weak": 10 + 20 * t / n + rng.normal(0, 20, n),
        # a dip in the middle that recovers
        "dip": 20 + 180 * (1 - np.exp(-t / 60)) - 120 * np.exp(-((t - 220) / 25) ** 2) + rng.normal(0, 10, n),
        # at its best after a few episodes (rl-healthy: 0.75, 0.93, 0.81, then 0.97)
        "solved": np.concatenate([[0.75, 0.93, 0.81], np.full(n - 3, 0.97)]),
    }
    for name, ret in curves.items():
        found = _found(_run(tmp_path / f"{name}.h5", {"episode_reward": ret, "value_loss": 0.5 + rng.random(n)}))
        assert not found, (name, [x.title for x in found])


def test_preference_rewards_are_not_a_return(tmp_path):
    """TRL's DPO logs rewards/chosen, rewards/rejected, rewards/margins: none is an agent's return."""
    n = 300
    rng = np.random.default_rng(0)
    f = _return_finding(_run(tmp_path / "dpo.h5", {"rewards/chosen": rng.normal(0, 0.01, n),
                                                    "rewards/rejected": -np.linspace(0, 2, n),
                                                    "rewards/margins": np.linspace(0, 2, n)}))
    assert f is None


def test_a_policy_loss_that_drifts_far_below_its_start_is_no_unbounded_loss(tmp_path):
    """A policy-gradient loss starts near 0 and follows the advantages: -0.00017 drifting to -2.8
    read "the loss fell without bound" (error) before RL runs were exempt from that rule."""
    n = 300
    rng = np.random.default_rng(1)
    found = _found(_run(tmp_path / "pg.h5", {
        "loss": -0.00017 - 2.84 * np.clip(np.arange(n) - 50, 0, None) / (n - 50) + 1e-5 * rng.normal(size=n),
        "episode_reward": np.linspace(-1, 5, n) + rng.normal(size=n)}))
    assert not [f for f in found if f.symptom == "loss_unbounded"], [(f.symptom, f.title) for f in found]
