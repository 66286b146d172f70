"""Pull the series the rules need out of an ``analysis.Run``; every piece is optional.

A run without ``watch()`` has only losses; a live or crashed run may have tables of
different lengths; a run of a model without activation modules has no act_* rows.
Whatever is missing is None and the rules that need it stay silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainspect.recorder import format as fmt

from ..vocab import logged_stand_ins, loss_roles
from .rank_rules import rank_signals
from .tables import Table

NORM_TYPES = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
              "InstanceNorm2d", "RMSNorm", "SyncBatchNorm"}


@dataclass
class Signals:
    train_loss: tuple | None = None         # (name, steps, values)
    val_loss: tuple | None = None
    scalars: dict = field(default_factory=dict)    # name -> (steps, values) for sys/ series present
    layer: dict = field(default_factory=dict)      # stat name -> Table (read in row chunks when used)
    params: list = field(default_factory=list)     # ParamInfo
    modules: list = field(default_factory=list)    # ModuleInfo
    snapshots: object = None                        # Snapshots or None
    meta: dict = field(default_factory=dict)
    stand_ins: dict = field(default_factory=dict)  # sys series -> the logged metric read in its place
    ranks: object = None                            # rank_rules.RankSignals of a distributed run, else None


def _loss(run, names_present, candidates):
    for name in candidates:
        if name in names_present:
            s = run.scalar(name)
            if len(s):
                return name, np.asarray(s.steps), np.asarray(s.values, dtype=np.float64)
    return None


def extract(run) -> Signals:
    names = run.scalar_names()
    present = set(names)
    sig = Signals(meta=dict(run.meta or {}))
    roles = loss_roles(names, sig.meta.get(fmt.META_ROLES))
    sig.train_loss = _loss(run, present, [roles["train"]] if "train" in roles else [])
    sig.val_loss = _loss(run, present, [roles["val"]] if "val" in roles else [])
    for name in (fmt.SYS_LR, fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS, fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD,
                 fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX):
        if name in present:
            s = run.scalar(name)
            if len(s):
                sig.scalars[name] = (np.asarray(s.steps), np.asarray(s.values, dtype=np.float64))
    for sys_name, logged in logged_stand_ins(names).items():   # an unwatched run's own logs
        s = run.scalar(logged)
        if len(s):
            sig.scalars[sys_name] = (np.asarray(s.steps), np.asarray(s.values, dtype=np.float64))
            sig.stand_ins[sys_name] = logged
    stat_names = set(run.layer_stat_names())
    counts = {}     # one record count per group, so all tables of a group line up on a live run
    for stat in ("grad_norm", "grad_nonfinite", "weight_norm", "update_norm", "update_ratio", "act_mean",
                 "act_absmax", "act_frac_nonpos", "act_dead_frac", "act_frac_saturated"):
        if stat in stat_names:
            group = fmt.LAYER_STATS[stat][0]
            n = counts.setdefault(group, run.record_count(group))
            if n:
                sig.layer[stat] = Table.from_run(run, stat, n)
    sig.params = list(run.params or [])
    sig.modules = list(run.modules or [])
    sig.snapshots = _first_and_last_snapshots(run)
    sig.ranks = rank_signals(run)     # the sibling rank files of a distributed run
    return sig


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
