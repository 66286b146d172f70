"""Pull the series the rules need out of an ``analysis.Run``; every piece is optional.

A run without ``watch()`` has only losses; a live or crashed run may have tables of
different lengths; a run of a model without activation modules has no act_* rows.
Whatever is missing is None and the rules that need it stay silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainspect.recorder import format as fmt

from ..vocab import (adversarial_losses, logged_stand_ins, loss_roles, loss_terms, policy_update_stats,
                     unjudged_rl_losses)
from ..ranks import NONFINITE_SERIES, dist_info
from ..run import RunState
from .rank_rules import TIMING_SERIES, rank_signals
from .tables import Table

NORM_TYPES = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
              "InstanceNorm2d", "RMSNorm", "SyncBatchNorm"}


@dataclass
class Signals:
    train_loss: tuple | None = None         # (name, steps, values)
    val_loss: tuple | None = None
    scalars: dict = field(default_factory=dict)    # name -> (steps, values) for sys/ series present
    point_counts: dict = field(default_factory=dict)   # metric -> points logged, 0 for one registered but
    #                                                    never logged (when the run tells)
    layer: dict = field(default_factory=dict)      # stat name -> Table (read in row chunks when used)
    params: list = field(default_factory=list)     # ParamInfo
    modules: list = field(default_factory=list)    # ModuleInfo
    snapshots: object = None                        # Snapshots or None
    meta: dict = field(default_factory=dict)
    stand_ins: dict = field(default_factory=dict)  # sys series -> the logged metric read in its place
    ranks: object = None                            # rank_rules.RankSignals of a distributed run, else None
    rewards: list = field(default_factory=list)     # a reinforcement-learning run's reward metrics (losses not judged)
    rl_series: dict = field(default_factory=dict)   # name -> (steps, values): its rewards and policy-update stats
    #                                                 (approx_kl, clip_fraction: vocab.policy_update_stats)
    live: bool = False                              # the run is still being written: its curves have no end yet
    adversarial: bool = False                       # a GAN's network: its losses are Loss_G / errD / ... (vocab)
    loss_terms: dict = field(default_factory=dict)  # name -> (steps, values): the terms the training loss sums
    gan_losses: dict = field(default_factory=dict)  # name -> (steps, values): a GAN's adversarial losses (vocab)
    path: object = None                             # the run file's path (a GAN's other network's file is beside it)
    lr_groups: dict = field(default_factory=dict)   # param group -> (steps, values) of its LR (sys/lr, sys/lr/k)


SYS_SERIES = (fmt.SYS_LR, fmt.SYS_GRAD_NORM, fmt.SYS_GRAD_NORM_POST_CLIP, fmt.SYS_NONFINITE_GRADS,
              fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD, fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX, fmt.SYS_EVAL_MODE,
              fmt.SYS_GRAD_CARRIED, fmt.SYS_NOGRAD_TRAIN_MODE, fmt.SYS_BATCH_SIZE, fmt.SYS_INPUT_NUMEL, fmt.SYS_STEP_TIME,
              fmt.SYS_AMP_SKIPPED, fmt.SYS_LOSS_SCALE)


MAX_WALL_POINTS = 100_000


def _log_step_times(run, sig):
    """(steps, seconds) between the training loss's rows of consecutive steps, for a model watched
    without an optimizer in a file written before the recorder timed such steps (``sys/step_time``):
    a hand-written update's loop logs once an iteration, so its log times are its step times. A word
    LM whose hidden state was never detached took 0.08 s a step, then 0.64 s after 45 (trial 18 U7)."""
    meta = sig.meta
    if not isinstance(meta.get("model"), dict) or meta.get("optimizer"):
        return None
    name = sig.train_loss[0]
    if sig.point_counts.get(name, 0) > MAX_WALL_POINTS:
        return None
    try:
        rows = run.scalar(name)
    except (KeyError, OSError, ValueError):
        return None
    steps, wall = np.asarray(rows.steps, np.int64), np.asarray(rows.wall, np.float64)
    if len(steps) < 3 or np.any(np.diff(steps) < 0):
        return None
    last = np.r_[steps[1:] != steps[:-1], True]          # the last row of each step
    steps, wall = steps[last], wall[last]
    gap = np.diff(wall)
    ok = (np.diff(steps) == 1) & np.isfinite(gap) & (gap > 0)
    return (steps[1:][ok], gap[ok]) if ok.sum() >= 3 else None


def _read_series(run, names) -> dict:
    """name -> (steps, values) of the metrics ``names`` that have points. A Run gives bounded
    views (Run.scalar_views: every point up to 131,072 per metric, then buckets that keep
    spikes and NaNs), so diagnosing a long run, again and again while ``tail`` follows it,
    takes memory that does not grow with the run."""
    if hasattr(run, "scalar_views"):
        series = run.scalar_views(names)
    else:
        series = {n: run.scalar(n) for n in names}
    return {n: (np.asarray(s.steps), np.asarray(s.values, dtype=np.float64)) for n, s in series.items() if len(s)}


def _lr_group_numbers(tags) -> list:
    """[(group, tag)] of the LR tags, fmt.SYS_LR (group 0) and SYS_LR + "/<k>"; a tag not ending in a
    number is left out."""
    out = []
    for tag in tags:
        tail = tag[len(fmt.SYS_LR) + 1:]
        if tag == fmt.SYS_LR or tail.isdigit():
            out.append((int(tail) if tail else 0, tag))
    return out


def _metric_names(run) -> list:
    # scalar_names() loads every metric of a run up to 8 M rows (for the app's first paint)
    return run.metric_names() if hasattr(run, "metric_names") else run.scalar_names()


def is_live(run) -> bool:
    """The run is still being written: its curves have no end yet."""
    status = getattr(run, "status", None)
    if status is None:
        return False
    return status().state == RunState.LIVE


def extract(run, reuse=None) -> Signals:
    names = _metric_names(run)
    present = set(names)
    sig = Signals(meta=dict(run.meta or {}), live=is_live(run))
    roles = loss_roles(names, sig.meta.get(fmt.META_ROLES), getattr(run, "point_counts", None))
    sig.rewards = unjudged_rl_losses(names, sig.meta.get(fmt.META_ROLES))   # Context.loss_curve() reads it
    gan = adversarial_losses(names)
    sig.adversarial, sig.path = bool(gan), getattr(run, "path", None)
    stand_ins = logged_stand_ins(names)   # an unwatched run's own logs
    terms = loss_terms(names, roles)
    wanted = [roles[r] for r in ("train", "val") if r in roles] + terms + [n for n in SYS_SERIES if n in present]
    # a distributed run: rank_signals reads this file's timing too; asked together, one pass over it
    ranks = [n for n in (*TIMING_SERIES, *NONFINITE_SERIES) if n in present] if dist_info(run) else []
    lr_tags = [n for n in fmt.lr_groups(names) if n != fmt.SYS_LR]    # groups 1, 2, ... (group 0 is in SYS_SERIES)
    rl = sig.rewards + policy_update_stats(names) if sig.rewards else []    # the return is judged (return_not_improving)
    series = _read_series(run, list(dict.fromkeys(wanted + list(stand_ins.values()) + ranks + gan + lr_tags + rl)))
    sig.rl_series = {n: series[n] for n in rl if n in series}
    sig.gan_losses = {n: series[n] for n in gan if n in series}
    counts = getattr(run, "point_counts", None)
    sig.point_counts = counts() if counts is not None else {}
    for role in ("train", "val"):
        if roles.get(role) in series:
            name = roles[role]
            steps, values = series[name]
            if sig.point_counts.get(name, len(values)) == len(values):    # every point (not a decimated view)
                steps, values = last_per_step(steps, values)
            setattr(sig, f"{role}_loss", (name, steps, values))
    sig.scalars = {n: series[n] for n in SYS_SERIES if n in series}
    sig.lr_groups = {g: series[tag] for g, tag in _lr_group_numbers([fmt.SYS_LR, *lr_tags]) if tag in series}
    sig.loss_terms = {n: series[n] for n in terms if n in series}
    for sys_name, logged in stand_ins.items():
        if logged in series:
            sig.scalars[sys_name] = series[logged]
            sig.stand_ins[sys_name] = logged
    if fmt.SYS_STEP_TIME not in sig.scalars and sig.train_loss is not None:
        walls = _log_step_times(run, sig)
        if walls is not None:
            sig.scalars[fmt.SYS_STEP_TIME] = walls
    stat_names = set(run.layer_stat_names())
    counts = {}     # one record count per group, so all tables of a group line up on a live run
    for stat in ("grad_norm", "grad_nonfinite", "weight_norm", "update_norm", "update_ratio", "act_mean",
                 "act_std", "act_absmax", "act_frac_nonpos", "act_dead_frac", "act_frac_saturated"):
        if stat in stat_names:
            group = fmt.LAYER_STATS[stat][0]
            n = counts.setdefault(group, run.record_count(group))
            if n and not _out_of_order(run, group, counts):
                sig.layer[stat] = Table.from_run(run, stat, n)
    sig.params = list(run.params or [])
    sig.modules = list(run.modules or [])
    sig.snapshots = _first_and_last_snapshots(run)
    sig.ranks = rank_signals(run, reuse)     # the sibling rank files of a distributed run
    return sig


def _out_of_order(run, group: str, counts: dict) -> bool:
    """The records of ``group`` go back to an earlier step (a damaged file): not judged, since a
    weight that "moved -28 %" between its first and last record is the damage, not the training
    (coverage names it). Read once per group (``counts`` keeps the answer)."""
    key = ("back", group)
    if key not in counts:
        counts[key] = run.steps_going_back(group) is not None if hasattr(run, "steps_going_back") else False
    return counts[key]


def last_per_step(steps, values):
    """One value per step, the last logged, where several share a step (a loss logged inside an
    LBFGS closure: 20 evaluations, line-search ones included, at each optimizer step; trial 18 U9),
    in the order of those last values. A series all at one step is kept as it is (its order is all
    there is to judge)."""
    steps = np.asarray(steps)
    if len(steps) < 2:
        return steps, values
    d = np.diff(steps)
    if np.all(d > 0):       # the usual case: one pass, no copy
        return steps, values
    rev = steps[::-1]
    uniq, first_in_rev = np.unique(rev, return_index=True)
    if len(uniq) == len(steps) or len(uniq) < 2:
        return steps, values
    keep = np.sort(len(steps) - 1 - first_in_rev)
    return steps[keep], np.asarray(values)[keep]


def _first_and_last_snapshots(run):
    """Only the first and last snapshot are judged: reading them all can be gigabytes."""
    try:
        n = run.record_count(fmt.SNAPS)
        if not n:
            return None
        first, last = run.snapshots(0, 1), run.snapshots(n - 1, n)
    except (KeyError, ValueError):
        return None
    if not len(first.steps) or not len(last.steps):
        return None
    if n == 1:
        return first
    return type(first)(np.concatenate([first.steps, last.steps]), np.concatenate([first.data, last.data]),
                       first.layers, first.shapes)


def main_loss(sig: Signals):
    """(name, steps, values) of the loss the curve rules judge: the training loss, else the validation loss."""
    return sig.train_loss or sig.val_loss
