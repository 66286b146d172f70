"""Pull the series the rules need out of an ``analysis.Run``; every piece is optional.

A run without ``watch()`` has only losses; a live or crashed run may have tables of
different lengths; a run of a model without activation modules has no act_* rows.
Whatever is missing is None and the rules that need it stay silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recorder import format as fmt

TRAIN_LOSS_NAMES = ("train/loss", "loss", "train_loss", "loss/train")
VAL_LOSS_NAMES = ("val/loss", "val_loss", "valid/loss", "validation/loss", "eval/loss", "eval_loss", "loss/val",
                  "test/loss")
NORM_TYPES = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
              "InstanceNorm2d", "RMSNorm", "SyncBatchNorm"}


@dataclass
class Signals:
    train_loss: tuple | None = None         # (name, steps, values)
    val_loss: tuple | None = None
    scalars: dict = field(default_factory=dict)    # name -> (steps, values) for sys/ series present
    layer: dict = field(default_factory=dict)      # stat name -> (steps, [R x L], layers)
    params: list = field(default_factory=list)     # ParamInfo
    modules: list = field(default_factory=list)    # ModuleInfo
    snapshots: object = None                        # Snapshots or None
    meta: dict = field(default_factory=dict)

    def scalar(self, name):
        return self.scalars.get(name)


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
    sig.train_loss = _loss(run, present, TRAIN_LOSS_NAMES)
    sig.val_loss = _loss(run, present, VAL_LOSS_NAMES)
    if sig.train_loss is None:     # an unconventional name: take the first scalar with "loss" in it
        other = [n for n in names if "loss" in n.lower() and not n.startswith(fmt.SYS_PREFIX)
                 and (sig.val_loss is None or n != sig.val_loss[0]) and n not in VAL_LOSS_NAMES]
        if other:
            sig.train_loss = _loss(run, present, other[:1])
    for name in (fmt.SYS_LR, fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS, fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD,
                 fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX):
        if name in present:
            s = run.scalar(name)
            if len(s):
                sig.scalars[name] = (np.asarray(s.steps), np.asarray(s.values, dtype=np.float64))
    stat_names = set(run.layer_stat_names())
    for stat in ("grad_norm", "grad_nonfinite", "weight_norm", "update_norm", "update_ratio", "act_mean",
                 "act_absmax", "act_frac_nonpos", "act_dead_frac", "act_frac_saturated"):
        if stat in stat_names:
            ls = run.layer_stat(stat)
            if len(ls.steps):
                sig.layer[stat] = (np.asarray(ls.steps), np.asarray(ls.values), list(ls.layers))
    sig.params = list(run.params or [])
    sig.modules = list(run.modules or [])
    try:
        snaps = run.snapshots()
        if snaps is not None and len(snaps.steps):
            sig.snapshots = snaps
    except (KeyError, ValueError):
        sig.snapshots = None
    return sig
