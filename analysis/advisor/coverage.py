"""What the advisor could not check: the instruments a run lacks, and the symptoms they feed.

An imported TensorBoard/CSV log or a run recorded without ``watch()`` has losses but no
per-layer records; the advisor's silence about gradients there means "not looked at", not
"healthy". ``coverage(run)`` says so, one ``Gap`` per missing instrument, plus the logged
metrics read in place of the recorder's own series (``vocab.logged_stand_ins``).
Cheap: it reads names and record counts only, never the data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from trainspect.recorder import format as fmt

from ..frozen import meta_device_params, optimizer_holds_none
from ..vocab import adversarial_losses, logged_stand_ins, loss_roles, unjudged_rl_losses
from .signals import is_live

WATCH = "record with trainspect (rec.watch(model, optimizer))"


@dataclass(frozen=True)
class Instrument:
    id: str
    missing: str            # "no per-layer gradients"
    checks: str             # what it lets the advisor check, in words
    how: str                # how to get it
    present: Callable       # present(view) -> bool

    @property
    def symptoms(self) -> tuple:
        """Ids of the registry's symptoms that need this instrument (``SymptomSpec.needs``)."""
        from .registry import REGISTRY
        return tuple(spec.id for spec in REGISTRY if self.id in spec.needs)


@dataclass
class _View:
    names: set
    roles: dict
    stats: set
    snapshots: int


INSTRUMENTS = (
    Instrument("loss", "no training or validation loss",
               "the loss curve (divergence, oscillation, spikes, no progress, plateaus)",
               "log the loss as train/loss or loss (or name it: Recorder(roles={'train': ...}))",
               lambda v: bool(v.roles)),
    Instrument("training_loss", "no training loss", "overfitting (the curve rules read the validation loss instead)",
               "log it as train/loss or loss (or name it: Recorder(roles={'train': ...}))",
               lambda v: "train" in v.roles),
    Instrument("validation_loss", "no validation loss", "overfitting",
               "log one as val_loss or eval/loss (or name it: Recorder(roles={'val': ...}))",
               lambda v: "val" in v.roles),
    Instrument("gradients", "no per-layer gradients", "vanishing/exploding gradients and frozen layers",
               WATCH,
               lambda v: "grad_norm" in v.stats),
    Instrument("activations", "no activation statistics", "dead or saturated units",
               WATCH,
               lambda v: bool({"act_dead_frac", "act_frac_saturated"} & v.stats)),
    Instrument("weight_snapshots", "no weight snapshots", "symmetric weights (a broken initialisation)",
               WATCH, lambda v: v.snapshots > 0),
    Instrument("inputs", "no input statistics", "unnormalised inputs", WATCH,
               lambda v: fmt.SYS_INPUT_MEAN in v.names),
)


@dataclass
class Gap:
    instrument: str
    missing: str
    cannot_check: list      # symptom ids
    text: str               # "no per-layer gradients: record with trainspect (...) to check vanishing/..."
    checks: str = ""        # what it could not check, in words
    how: str = ""           # how to get the instrument


@dataclass
class Coverage:
    gaps: list = field(default_factory=list)        # [Gap]
    stand_ins: dict = field(default_factory=dict)   # {"sys/lr": "lr-Adam"}: logged metrics read instead

    def to_dict(self) -> dict:
        return {"not_checked": [asdict(g) for g in self.gaps], "read_from_logs": dict(self.stand_ins)}

    def stand_in_text(self) -> str:
        """"read from logged metrics: learning rate <- lr-Adam", or "" when none was needed."""
        if not self.stand_ins:
            return ""
        return "read from logged metrics: " + ", ".join(
            f"{fmt.scalar_spec(s).label if fmt.scalar_spec(s) else s} <- {name}" for s, name in self.stand_ins.items())

    def lines(self) -> list[str]:
        """Plain-text lines (empty when nothing is missing)."""
        out = []
        if self.gaps:
            out.append("not checked (missing from this run):")
        by_how: dict = {}
        for g in self.gaps:
            by_how.setdefault(g.how, []).append(g)
        for how, gaps in by_how.items():
            if len(gaps) == 1:
                out.append(f"  {gaps[0].text}")
            else:   # one remedy for several instruments (watch()): said once
                out += [f"  {g.missing}: could not check {g.checks}" for g in gaps]
                out.append(f"  -> {how} to check these")
        if self.stand_ins:
            out.append(self.stand_in_text())
        return out


def coverage(run) -> Coverage:
    """The instruments ``run`` (an ``analysis.Run`` or a path) lacks and what that leaves unchecked."""
    if not hasattr(run, "scalar_names"):
        from ..run import open_run
        with open_run(run) as opened:
            return coverage(opened)
    # the names only: scalar_names() of a Run with kept points loads every metric up to 8 M rows
    names = list(run.metric_names() if hasattr(run, "metric_names") else run.scalar_names())
    meta = run.meta or {}
    view = _View(set(names), loss_roles(names, meta.get(fmt.META_ROLES)), set(run.layer_stat_names()),
                 run.record_count(fmt.SNAPS) if fmt.SNAPS in run.instruments() else 0)
    gaps = []
    for inst in INSTRUMENTS:
        if inst.present(view) or (inst.id in ("training_loss", "validation_loss") and not view.roles):
            continue    # (no loss at all is one gap, not three)
        how = (_why_watched_run_lacks(inst.id, meta, view, getattr(run, "params", None))
               or _gan_losses_only(inst.id, names) or inst.how)
        gaps.append(Gap(inst.id, inst.missing, list(inst.symptoms),
                        f"{inst.missing}: {how} to check {inst.checks}", inst.checks, how))
    for group in (run.instruments() if hasattr(run, "steps_going_back") else ()):
        back = run.steps_going_back(group)
        if back is not None:      # the advisor leaves these records out (signals._out_of_order)
            how = "the recorder writes records in step order: the file is damaged; re-record the run"
            gaps.append(Gap(f"order:{group}", f"the {group} records go back from step {back[1]} to step {back[0]}",
                            [], f"the {group} records go back from step {back[1]} to step {back[0]}, so they are "
                                f"not judged: {how}", f"the {group} records", how))
    short = _short_loss_curve(run, view.roles)
    if short is not None:
        gaps.insert(0, short)
    if view.roles and is_live(run):
        # Diagnosed between trainer.train() and the script's exit (the file is still open), an
        # unfinished warm-up read "no problems found", rc 0, with nothing here.
        how = "diagnose it again once the run has finished"
        gaps.insert(0, Gap("run_end", "the run is still being written (live)", ["slow_convergence", "warmup_unfinished"],
                           f"the run is still being written (live): the end of its curves is not judged (a loss still "
                           f"falling at the end, a warm-up that never finished): {how}",
                           "a loss still falling at the end, a warm-up that never finished", how))
    rewards = unjudged_rl_losses(names, meta.get(fmt.META_ROLES)) if view.roles else []
    if rewards:
        loss = INSTRUMENTS[0]
        shown = ", ".join(rewards[:3]) + (" ..." if len(rewards) > 3 else "")
        how = (f"a reinforcement-learning run (it logs {shown}): its losses follow the returns, not a minimum, "
               "so they are not judged; a loss meant to fall can be named (Recorder(roles={'train': ...}))")
        gaps = [g for g in gaps if g.instrument != "validation_loss"]   # nothing to overfit against
        gaps.insert(0, Gap(loss.id, "loss curve not judged", list(loss.symptoms), f"loss curve not judged: {how}",
                           loss.checks, how))
    return Coverage(gaps, logged_stand_ins(names))


SHORT_READ = 10_000    # a loss of 20+ points read to count its steps only up to this many points


def _short_loss_curve(run, roles) -> Gap | None:
    """A loss with fewer points than the curve rules need (an 8-step LBFGS run): said, so that
    "no problems found" does not read as a judged curve."""
    from .context import MIN_LOSS_POINTS
    name = roles.get("train") or roles.get("val")
    counts = run.point_counts() if name and hasattr(run, "point_counts") else {}
    n = counts.get(name)
    if n is None:
        return None
    what = f"{name} has {n} point(s)"
    how = (f"log it at least {MIN_LOSS_POINTS} times (every step, or more often than now) to have the curve judged; "
           "only NaN/Inf and a blow-up by 100x or more are checked on it")
    if n >= MIN_LOSS_POINTS:
        if n > SHORT_READ or not hasattr(run, "scalar"):
            return None
        # several values a step (a loss logged inside an LBFGS closure): the rules judge the last of each
        steps = np.asarray(run.scalar(name).steps)
        k = len(np.unique(steps))
        if k >= MIN_LOSS_POINTS or k < 2 or k == len(steps):
            return None
        what = f"{name} has {n} points at only {k} steps (the rules judge the last of each step)"
        how = ("log one value per step: inside an LBFGS closure, log the loss optimizer.step(closure) returns, or "
               "each evaluation at a counter of your own (step=); " + how)
    loss = INSTRUMENTS[0]
    return Gap(loss.id, f"{what}, too few for the loss-curve rules", list(loss.symptoms),
               f"{what}, too few for the loss-curve rules: {how}", loss.checks, how)


def _gan_losses_only(instrument: str, names) -> str | None:
    """A GAN's run with only its adversarial losses (Loss_D, Loss_G): say why they are not read
    as a loss curve, rather than to log a loss it already logs."""
    gan = adversarial_losses(names) if instrument == "loss" else []
    if not gan:
        return None
    shown = ", ".join(gan[:3]) + (" ..." if len(gan) > 3 else "")
    return (f"the GAN losses here ({shown}) move with the game between the networks, not towards a minimum, "
            "so they are not read as one; a loss meant to fall can be named (Recorder(roles={'train': ...}))")


def instruments_off_step(run) -> int | None:
    """The step at which the recorder switched the per-layer instruments off after one failed
    (``sys/instruments_off``), or None."""
    if fmt.SYS_INSTRUMENTS_OFF not in (run.metric_names() if hasattr(run, "metric_names") else run.scalar_names()):
        return None
    s = run.scalar(fmt.SYS_INSTRUMENTS_OFF)
    return int(s.steps[0]) if len(s) else None


_SCHEDULES = {"activations": "stats_every", "inputs": "stats_every", "weight_snapshots": "snapshot_every"}


def _why_watched_run_lacks(instrument: str, meta: dict, view: _View, params=None) -> str | None:
    """A run that did call watch() and still lacks an instrument was told not to record it, or
    could not, or recorded no step: "record with trainspect (rec.watch(...))" misled nanoGPT's
    users, and those of a run closed before its first step."""
    if instrument in ("loss", "training_loss", "validation_loss") or not isinstance(meta.get("model"), dict):
        return None
    if meta["model"].get("n_params") == 0:
        return "the watched model has no parameters (layers in a plain list?): watch the module that holds them"
    if fmt.SYS_INSTRUMENTS_OFF in view.names:
        return ("the per-layer instruments failed during the run and were switched off (the training printed why: "
                "'a per-layer instrument failed (...)'); a bug report with that line helps")
    if instrument in ("gradients", "weight_snapshots") and fmt.SYS_AMP_SKIPPED in view.names \
            and "grad_norm" not in view.stats:
        # trial 18 U3: "record with trainspect (rec.watch(model, optimizer))" to a run that had
        return ("watch() was called, but the GradScaler skipped every optimizer step recorded (inf/NaN gradients): "
                "no gradient or weight record was written")
    if not view.stats and not view.snapshots:
        return "watch() was called, but no optimizer step was recorded: train at least a step"
    schedule = meta.get("schedule") if isinstance(meta.get("schedule"), dict) else {}
    every = _SCHEDULES.get(instrument)
    if every is not None and schedule.get(every) == 0:
        return f"{every}=0 turned them off: record with Recorder({every}=N)"
    if instrument == "activations" and meta["model"].get("compiled"):
        return ("a torch.compile'd model records none (per-module hooks would make it recompile): "
                "record a short run without torch.compile")
    if instrument in ("activations", "inputs") and meta_device_params(meta):
        return ("the watched module's parameters were on the meta device: it held no data (a torch.func ensemble's "
                "base model, run by vmap(functional_call)? watch() does not see inside those); train one member "
                "as a plain module, member(x), under watch()")
    if instrument in ("activations", "inputs") and "grad_norm" in view.stats and optimizer_holds_none(meta, params):
        # trial 15 F8: a torch.func ensemble's base model on real weights; "model.forward(x)?" misled
        return ("the training never called the watched module and the optimizer holds none of its parameters: it is "
                "not the module being trained (a copy of the model, or a torch.func ensemble's base model run by "
                "vmap(functional_call)?); watch the module the training calls, or, for a vmap ensemble, train one "
                "member as a plain module under watch()")
    if instrument in ("activations", "inputs") and "grad_norm" in view.stats:
        # steps were recorded but no training forward reached the model's hooks
        if fmt.SYS_EVAL_MODE in view.names:
            return ("watch() was called, but the model ran its training forwards in eval mode (see "
                    "eval_mode_training): call model.train() before training")
        return ("watch() was called, but no training-mode forward of the model went through its hooks "
                "(model.forward(x) or self.forward(x) instead of model(x)? every forward under torch.no_grad()?): "
                "call the module, model(x)")
    return None
