"""``return_not_improving``: a reinforcement-learning run whose return never improved, or collapsed.

A run that logs rewards or returns (``episode_reward``, ``running_reward``, SB3's
``rollout/ep_rew_mean``, CleanRL's ``charts/episodic_return``: ``vocab.reward_metrics``) has its
losses left alone: a policy-gradient loss follows the episodes, not a minimum. Its return is what
says whether it learns. Trial 18 (U5): an agent that never reached its goal (episode_reward -0.30
in all 300 episodes), a PPO log whose return stayed at ~9.5 for 400 updates and one whose return
rose 10 -> 200 then fell back to ~15 while approx_kl jumped 30x all read "no problems found".

Two shapes, judged on the smoothed curve (bin medians, then a running median: returns are noisy):

- **never improved**: every reward metric is exactly constant (the agent never sees a different
  reward: a sparse reward its exploration never reaches), or no tenth of the run rose above the
  first tenth by more than the noise moves a median (``FLAT_SE`` standard errors), the last third
  is no higher than the first, and it did not start lower (an agent at its best within its first
  episodes improved, it did not stall);
- **collapse**: the smoothed return rose well above its start (>= ``RISE_SE`` standard errors),
  then fell back by >= ``FALL_FRAC`` of that rise and stayed there for the last ``TAIL_FRAC`` of
  the run (policy collapse, PPO's most common failure); approx_kl / clip_fraction jumping after
  the peak is cited as evidence (an update that threw the policy off) when logged.
"""
from __future__ import annotations

import numpy as np

from ...findings import Evidence, Finding, Fix
from ...vocab import _name_words
from ..series import fmt, smooth_curve
from ..spec import SymptomSpec

MIN_POINTS = 50          # episodes / updates: "hundreds of episodes" of a flat return
FLAT_SE = 5.0            # no tenth's median > 5 standard errors above the first tenth's: never moved
HEAD_POINTS = 5          # the start: the first episodes (an agent at its best after 3 episodes improved)
RISE_SE = 6.0            # a rise of 6 standard errors of the smoothed level is no noise
FALL_FRAC = 0.6          # fell back by 60 % of the rise ...
TAIL_FRAC = 0.15         # ... and stayed there for the last 15 % of the run
KL_JUMP = 3.0            # approx_kl / clip_fraction after the peak >= 3x its level before
# a preference-tuning run's rewards (TRL's DPO: rewards/chosen, rewards/rejected, rewards/margins) and
# spreads (ep_rew_std, reward_max) are not the return an agent climbs
_NOT_THE_RETURN = {"std", "var", "min", "max", "chosen", "rejected", "margins", "margin", "accuracies", "accuracy",
                   "loss"}
_EPISODIC = {"ep", "episode", "episodic", "mean"}     # per-episode returns before running averages


def returns(sig) -> list:
    """[(name, steps, values)] of the reward metrics that are a return, finite values only."""
    out = []
    for name in sig.rewards:
        if name not in sig.rl_series or _NOT_THE_RETURN & set(_name_words(name)):
            continue
        steps, values = sig.rl_series[name]
        ok = np.isfinite(values)
        out.append((name, np.asarray(steps)[ok], np.asarray(values, dtype=np.float64)[ok]))
    # a per-episode return before a running average of it (its collapse shows first, and as is)
    return sorted(out, key=lambda r: not (_EPISODIC & set(_name_words(r[0]))))


def noise(values) -> float:
    """The point-to-point noise of a curve (robust std of its steps / sqrt 2): a trend leaves it alone."""
    d = np.diff(values)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)) if len(d) else 0.0


def _smoothed(steps, values):
    """(steps, smoothed level, standard error of one smoothed point)."""
    s, level = smooth_curve(steps, values)
    per_point = max(1.0, len(values) / max(len(level), 1))          # raw points per bin
    width = max(5, int(round(0.05 * len(level)))) | 1               # smooth_curve's running-median width
    se = 1.2533 * noise(values) / np.sqrt(per_point * min(width, len(level)))
    return s, level, se


def flat(steps, values) -> dict | None:
    """{"constant": bool, ...} when the return never improved, else None: exactly constant, or no
    tenth of the run whose median rose > FLAT_SE standard errors above the first tenth's, the last
    third no higher than the first (by > 2 standard errors), and the first HEAD_POINTS no lower."""
    if len(values) < MIN_POINTS:
        return None
    if np.all(values == values[0]):
        return {"constant": True, "level": float(values[0]), "points": len(values)}
    sd = 1.2533 * noise(values)           # the standard error of a median of k points: sd / sqrt(k)
    tenths = [float(np.median(part)) for part in np.array_split(values, 10)]
    k = len(values) // 10
    third = len(values) // 3
    gain = float(np.median(values[-third:]) - np.median(values[:third]))
    start = float(np.median(values[:HEAD_POINTS]))
    if (max(tenths) - tenths[0] > FLAT_SE * sd / np.sqrt(k) or gain > 2 * sd / np.sqrt(third)
            or start < float(np.median(values)) - 3 * sd / np.sqrt(HEAD_POINTS)):
        return None
    return {"constant": False, "level": float(np.median(values)), "spread": max(tenths) - min(tenths),
            "se": sd / np.sqrt(k), "points": len(values)}


def collapse(steps, values) -> dict | None:
    """The smoothed return rose well, fell back most of the way and stayed there; else None."""
    if len(values) < MIN_POINTS:
        return None
    s, level, se = _smoothed(steps, values)
    n = len(level)
    head = float(np.median(level[:max(1, n // 20)]))
    p = int(np.argmax(level))
    peak = float(level[p])
    rise = peak - head
    tail = level[int(n * (1 - TAIL_FRAC)):]
    if rise <= max(RISE_SE * se, 1e-12) or p >= n * (1 - TAIL_FRAC) or not len(tail):
        return None
    ceiling = peak - FALL_FRAC * rise
    if float(tail.max()) > ceiling:
        return None
    below = np.flatnonzero(level[p:] <= ceiling)
    fell_at = int(s[p + below[0]])
    end = float(np.median(tail))
    return {"start": head, "peak": peak, "peak_step": int(s[p]), "fell_at": fell_at, "end": end,
            "fall": (peak - end) / rise}


def _policy_jump(sig, peak_step: int, fell_at: int) -> list:
    """[(name, before, after)] of approx_kl / clip_fraction whose median from the peak on is >= KL_JUMP x
    their median before it."""
    out = []
    for name, (steps, values) in sig.rl_series.items():
        if name in sig.rewards:
            continue
        steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
        ok = np.isfinite(values)
        before = values[ok & (steps < peak_step)]
        after = values[ok & (steps >= peak_step) & (steps <= max(fell_at, peak_step) + (fell_at - peak_step + 1))]
        if len(before) < 3 or len(after) < 3:
            continue
        b, a = float(np.median(np.abs(before))), float(np.median(np.abs(after)))
        if a >= KL_JUMP * max(b, 1e-12) and a > 0:
            out.append((name, b, a))
    return out


def detect(sig, ctx):
    if not sig.rewards or sig.live:
        return None
    rets = returns(sig)
    if not rets:
        return None
    for name, steps, values in rets:
        c = collapse(steps, values)
        if c is None:
            continue
        jumps = _policy_jump(sig, c["peak_step"], c["fell_at"])
        evidence = [Evidence(
            series=name, steps=[int(steps[0]), c["peak_step"], int(steps[-1])],
            values=[round(c["start"], 4), round(c["peak"], 4), round(c["end"], 4)], threshold=FALL_FRAC,
            text=f"{name} (smoothed) rose from {fmt(c['start'])} to {fmt(c['peak'])} at step {c['peak_step']}, "
                 f"fell below {fmt(c['peak'] - FALL_FRAC * (c['peak'] - c['start']))} from step {c['fell_at']} and "
                 f"ended at {fmt(c['end'])}: {min(100, round(100 * c['fall']))}% of the gain lost (threshold "
                 f"{100 * FALL_FRAC:.0f}%, held over the last {100 * TAIL_FRAC:.0f}% of the run)")]
        for stat, before, after in jumps:
            evidence.append(Evidence(
                series=stat, steps=[c["peak_step"], c["fell_at"]], values=[round(before, 6), round(after, 6)],
                threshold=KL_JUMP,
                text=f"{stat} jumped {after / max(before, 1e-12):.3g}x as the return fell ({fmt(before)} before step "
                     f"{c['peak_step']}, {fmt(after)} after): updates that moved the policy too far"))
        return Finding(
            symptom="return_not_improving", severity="warning",
            title=f"policy collapse: {name} rose to {fmt(c['peak'])} then fell back to {fmt(c['end'])} and stayed "
                  "there",
            first_step=c["peak_step"], last_step=int(steps[-1]), evidence=evidence,
            facts={"kind": "collapse", **{k: c[k] for k in ("start", "peak", "end", "fall")},
                   "policy_jump": [j[0] for j in jumps]})
    found = [(name, steps, values, flat(steps, values)) for name, steps, values in rets]
    if any(f is None for *_, f in found):
        return None      # some return moved: the agent learned something
    name, steps, values, f = found[0]
    if all(x[3]["constant"] for x in found):
        title = (f"the return never changed: {name} is {fmt(f['level'])} in all {f['points']} points: the agent "
                 "never sees a different reward")
        text = (f"{name} is exactly {fmt(f['level'])} at every one of its {f['points']} points (steps "
                f"{int(steps[0])}-{int(steps[-1])}): zero variance")
    else:
        title = f"the return never improved: {name} stayed at ~{fmt(f['level'])} for {f['points']} points"
        text = (f"{name}'s medians over each tenth of steps {int(steps[0])}-{int(steps[-1])} span "
                f"{fmt(f.get('spread', 0.0))}, none above the first tenth's by > {FLAT_SE:g} standard errors "
                f"({fmt(f.get('se', 0.0))} each, from the noise of the points); the last third no higher than the "
                f"first, the first {HEAD_POINTS} points no lower")
    evidence = [Evidence(series=name, steps=[int(steps[0]), int(steps[-1])], values=[round(f["level"], 4)],
                         threshold=FLAT_SE, text=text)]
    return Finding(
        symptom="return_not_improving", severity="warning", title=title,
        first_step=int(steps[0]), last_step=int(steps[-1]), evidence=evidence,
        facts={"kind": "constant" if all(x[3]["constant"] for x in found) else "flat", "level": f["level"],
               "points": f["points"]})


def adjust(s, finding, ctx) -> None:
    kind = finding.facts.get("kind")
    if kind == "collapse":
        jumps = finding.facts.get("policy_jump") or []
        s.boost("lr_too_high", 0.85 if jumps else 0.7,
                "the return rose, then an update threw the policy off and it never recovered" +
                (f" ({', '.join(jumps)} jumped as it fell)" if jumps else "") +
                ": steps too large for the policy (LR, clip range, epochs per rollout)")
        s.damp("sparse_reward", 0.1)
        s.damp("lr_too_low", 0.1)
    elif kind == "constant":
        s.boost("sparse_reward", 0.9, "every episode returned exactly the same reward: the agent never reached "
                                      "anything that pays differently, so there is nothing to learn from")
        s.damp("lr_too_high", 0.2)
        s.damp("lr_too_low", 0.3)
    else:      # a noisy return that never rose: the exploration first, an LR too small beside it
        s.score["sparse_reward"] = min(s.get("sparse_reward"), 0.5)
        s.damp("lr_too_high", 0.5)


def fixes(finding, ctx) -> list:
    if finding.facts.get("kind") == "collapse":
        return [Fix("lower_lr", "lower the learning rate 3-10x (or anneal it to 0 over the run, as SB3/CleanRL's "
                                "PPO can)"),
                Fix("smaller_policy_steps", "take smaller policy steps: a smaller clip range (PPO clip_range 0.1), "
                                            "target_kl ~0.01-0.03 to stop an update's epochs early, fewer epochs per "
                                            "rollout"),
                Fix("more_minibatches", "use more, smaller minibatches per rollout (and a larger rollout)"),
                Fix("clip_grads", "clip gradients (PPO's max_grad_norm 0.5)"),
                Fix("normalize_advantages", "normalise the advantages (per minibatch) and the rewards (VecNormalize)")]
    return [Fix("reward_shaping", "shape the reward: give partial credit on the way to the goal (distance, "
                                  "sub-goals) so random actions see different returns"),
            Fix("more_exploration", "explore more: an entropy bonus (PPO ent_coef 0.01), a higher epsilon for "
                                    "epsilon-greedy, or a higher sampling temperature"),
            Fix("curriculum", "use a curriculum: start with easier episodes (a nearer goal, longer time limit) and "
                              "make them harder as the return rises"),
            Fix("check_env_reward", "check the environment's reward: run a few random and hand-written episodes and "
                                    "print the rewards; a reward that is always the same has a bug or a goal that is "
                                    "never reached")]


SPEC = SymptomSpec(
    id="return_not_improving",
    looks_at="a reinforcement-learning run's returns (`episode_reward`, `running_reward`, `rollout/ep_rew_mean`, "
             "`charts/episodic_return`: vocab), smoothed (bin medians, running median); `approx_kl` / "
             "`clip_fraction` as evidence",
    fires_when=f"every return exactly constant over >= {MIN_POINTS} points, or no tenth of the run's median "
               f"above the first tenth's by > {FLAT_SE:g} standard errors (from the noise of the points), the last "
               f"third's no higher than the first's by > 2 and the first {HEAD_POINTS} points no lower (never improved); or the smoothed return rose >= {RISE_SE:g} standard errors "
               f"above its start, then lost >= {100 * FALL_FRAC:.0f}% of that gain for the last "
               f"{100 * TAIL_FRAC:.0f}% of the run (policy collapse; approx_kl / clip_fraction >= {KL_JUMP:g}x "
               "their level before the peak cited) (warning)",
    detect=detect,
    priors={"sparse_reward": 0.6, "lr_too_high": 0.3, "lr_too_low": 0.2},
    adjust=adjust,
    fixes=fixes,
    word="collapse or stall of the return",
)
