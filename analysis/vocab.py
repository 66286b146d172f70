"""The words every layer above the reader shares: severities, run states and loss roles.

Defined once here (below the app) so the CLI, the viewer, the reports and the advisor cannot
drift apart. The enums are ``str`` subclasses: ``finding.severity == "error"`` keeps working,
JSON writes the plain word, and dictionaries keyed by either form find each other.
"""
from __future__ import annotations

import re
from enum import Enum

from trainspect.recorder import format as fmt


class _Word(str, Enum):
    __str__ = str.__str__
    __format__ = str.__format__

    def __hash__(self):          # hash like the plain word, so "error" finds Severity.ERROR
        return str.__hash__(self)


class Severity(_Word):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 = info, 1 = warning, 2 = error: sort by it, most severe last."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.ERROR)


class RunState(_Word):
    LIVE = "live"            # the writer flushed recently
    FINISHED = "finished"    # closed normally
    CRASHED = "crashed"      # the recorder saw an exception (or the process was killed and said so)
    STALE = "stale"          # still marked running, but the heartbeat stopped: the writer is gone
    # the writer failed (disk full, I/O error) and recording stopped; the training went on
    RECORDING_STOPPED = "recording stopped"

    @property
    def dead(self) -> bool:
        """A run that will not go on: a CI gate should fail on it."""
        return self in (RunState.CRASHED, RunState.STALE)

    @property
    def final(self) -> bool:
        """Nothing more will be written to the file."""
        return self in (RunState.FINISHED, RunState.CRASHED, RunState.RECORDING_STOPPED)


# ---------------------------------------------------------------- loss roles
# Names tried in this order; the first one present wins. Conventions of plain PyTorch loops,
# Keras-style logs, TensorBoard tutorials ("Loss/train") and Lightning ("val_loss").
TRAIN_LOSS_NAMES = ("train/loss", "loss", "train_loss", "loss/train", "Loss/train", "training_loss")
VAL_LOSS_NAMES = ("val/loss", "val_loss", "valid/loss", "validation/loss", "validation_loss", "eval/loss",
                  "eval_loss", "loss/val", "Loss/val", "test/loss")
# Lightning logs "train_loss_step" and "train_loss_epoch" for self.log(..., on_step=True,
# on_epoch=True): the per-step series is the finer one, so it is preferred.
LIGHTNING_SUFFIXES = ("_step", "_epoch")
ROLES = fmt.LOSS_ROLES
_VAL_WORDS = ("val", "valid", "eval", "test")
# Terms of a loss that are meant to rise or to be balanced, not minimised alone (a VAE's KL rises
# while the reconstruction falls: "train/kl_loss diverged" was an ERROR when it was logged
# first), and AMP's loss scale: never taken for the training loss by the "has 'loss'" fallback.
_COMPONENT_WORDS = {"kl", "kld", "reg", "penalty", "aux", "commit", "commitment", "entropy", "scale", "scaler"}


def _first_present(candidates, present: set, points=None) -> str | None:
    """The first of ``candidates`` present; with ``points`` (a callable giving {name: points}),
    the one with the most points among those present (TensorBoard logs with both
    ``Loss/train`` every step and ``add_scalars('loss', ...)``'s ``loss/train`` every 10: the
    sparser one was judged by name order, and a divergence in the other went unseen)."""
    found = [name for base in candidates for name in (base, *(base + s for s in LIGHTNING_SUFFIXES))
             if name in present]
    if len(found) > 1 and points is not None:
        counts = points()
        return max(found, key=lambda n: counts.get(n, 0))     # the first of the densest
    return found[0] if found else None


# A GAN's losses (pytorch/examples' dcgan prints Loss_D and Loss_G, others log errG, g_loss,
# loss/discriminator...): the game between the two networks moves them, a generator's loss
# rises as its discriminator learns. They are not taken for the training loss: the divergence
# and plateau rules read them as "reduce the LR 10x" on healthy GANs.
_ADVERSARIAL_NETS = {"g", "gen", "generator", "d", "disc", "discriminator", "critic"}
_LOSS_WORDS = {"loss", "err", "error"}


def _name_words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def is_adversarial_loss(name: str) -> bool:
    """``Loss_G``, ``errD``, ``g_loss``, ``loss/discriminator``, ``critic_loss``: a GAN's loss."""
    words = _name_words(name)
    return bool(_LOSS_WORDS & set(words)) and bool(_ADVERSARIAL_NETS & set(words))


def adversarial_losses(names) -> list[str]:
    return [n for n in names if not n.startswith(fmt.SYS_PREFIX) and is_adversarial_loss(n)]


# A reinforcement-learning run logs its rewards or returns (episode_reward, running_reward,
# rollout/ep_rew_mean, eval/return): its losses (a policy-gradient surrogate, a value loss that
# grows with the returns) follow the episodes, not a minimum. Read as a training loss, a healthy
# actor-critic run whose reward climbed to 275 was "diverged: reduce the LR 10x".
_REWARD_WORDS = {"reward", "rewards", "return", "returns", "rew"}


def reward_metrics(names) -> list[str]:
    return [n for n in names if not n.startswith(fmt.SYS_PREFIX) and _REWARD_WORDS & set(_name_words(n))]


# PPO's measures of how far one update moved the policy (SB3 train/approx_kl, train/clip_fraction;
# CleanRL losses/approx_kl, losses/clipfrac): they jump when an update throws the policy off.
_POLICY_STEP_NAMES = ("approx_kl", "clip_fraction", "clipfrac", "clip_frac", "kl_divergence")


def policy_update_stats(names) -> list[str]:
    return [n for n in names if not n.startswith(fmt.SYS_PREFIX) and any(k in n.lower() for k in _POLICY_STEP_NAMES)]


def unjudged_rl_losses(names, declared: dict | None = None) -> list[str]:
    """The reward metrics of a reinforcement-learning run whose losses are therefore not judged
    as loss curves ([] otherwise, or when a training loss was named: ``roles={'train': ...}``)."""
    if isinstance(declared, dict) and declared.get("train"):
        return []
    return reward_metrics(names)


def loss_roles(names, declared: dict | None = None, points=None) -> dict[str, str]:
    """Which metric is the training loss and which the validation loss: {"train": ..., "val": ...}.

    ``declared`` (``Recorder(..., roles={"val": "my_metric"})``, stored in the run's metadata)
    wins over the conventions. A role with no metric is left out. Without a conventional
    training-loss name, the first user metric with "loss" in its name that does not look like
    a validation metric is taken. ``points``: a callable giving {name: number of points}, asked
    only when several conventional names of a role are present (the densest is taken).
    """
    names = list(names)
    present = set(names)
    roles: dict[str, str] = {}
    for role, name in (declared or {}).items():
        if role in ROLES and isinstance(name, str) and name in present:
            roles[role] = name
    if "val" not in roles:
        found = _first_present(VAL_LOSS_NAMES, present - set(roles.values()), points)
        if found is None:   # val/nll_loss, eval/ce_loss: a validation metric with "loss" in its name
            found = next((n for n in names if "loss" in n.lower() and not n.startswith(fmt.SYS_PREFIX)
                          and n not in roles.values() and not _COMPONENT_WORDS & set(_name_words(n))
                          and any(w in n.lower().replace("/", "_").split("_") for w in _VAL_WORDS)), None)
        if found:
            roles["val"] = found
    if "train" not in roles:
        found = _first_present(TRAIN_LOSS_NAMES, present - set(roles.values()), points)
        if found is None:
            found = next((n for n in names if "loss" in n.lower() and not n.startswith(fmt.SYS_PREFIX)
                          and n not in roles.values() and not is_adversarial_loss(n)
                          and not _COMPONENT_WORDS & set(_name_words(n))
                          and not any(w in n.lower().replace("/", "_").split("_") for w in _VAL_WORDS)), None)
        if found:
            roles["train"] = found
    return roles


MAX_LOSS_TERMS = 8


def loss_terms(names, roles: dict) -> list[str]:
    """Training metrics with "loss" in the name beside the training loss: the terms a multi-task
    or regularised loss is summed from (``train/loss_cls``, ``train/loss_reg``, ``kl_loss``); at
    most ``MAX_LOSS_TERMS``, none that look like validation metrics or a GAN's networks."""
    main, val = roles.get("train"), roles.get("val")
    if main is None:
        return []
    out = [n for n in names if n not in (main, val) and "loss" in n.lower() and not n.startswith(fmt.SYS_PREFIX)
           and not is_adversarial_loss(n) and not any(w in n.lower().replace("/", "_").split("_") for w in _VAL_WORDS)]
    return out[:MAX_LOSS_TERMS]


# ---------------------------------------------------------------- logged stand-ins
# A run that was not watched (imported TensorBoard/CSV logs, a loss-only run) may still have
# logged the learning rate and the global gradient norm under the framework's names: the
# advisor reads those where the recorder's own sys/lr and sys/grad_norm are absent.
LR_NAMES = ("lr", "learning_rate", "train/learning_rate", "train/lr", "lr/train", "learning-rate")
LR_MONITOR_PREFIX = "lr-"     # Lightning's LearningRateMonitor: lr-Adam, lr-SGD, lr-AdamW/pg1
GRAD_NORM_NAMES = ("grad_norm", "train/grad_norm", "gradient_norm", "grad_2.0_norm_total", "grad_norm/total")


def logged_stand_ins(names) -> dict[str, str]:
    """{recorder series: logged metric} for ``sys/lr`` and ``sys/grad_norm`` when the run has
    no series of its own under that name but a conventional logged one."""
    present = set(names)
    out = {}
    if fmt.SYS_LR not in present:
        lr = next((n for n in LR_NAMES if n in present), None) or next(
            (n for n in sorted(present) if n.startswith(LR_MONITOR_PREFIX)), None)
        if lr is not None:
            out[fmt.SYS_LR] = lr
    if fmt.SYS_GRAD_NORM not in present:
        g = next((n for n in GRAD_NORM_NAMES if n in present), None)
        if g is not None:
            out[fmt.SYS_GRAD_NORM] = g
    return out
