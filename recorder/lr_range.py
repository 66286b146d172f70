"""LR range test (Smith 2015, "Cyclical Learning Rates", section 3.3): which learning rate to try.

The LR grows exponentially from ``start_lr`` to ``end_lr`` over ``steps`` training steps of the
user's own step function; the loss falls once the LR is large enough to make progress, and
blows up once it is too large. The sweep is recorded as a normal run file (``sys/lr`` and
``train/loss`` every step, plus the smoothed loss and the suggestion as metrics), so the app
can plot loss against LR; the model and optimizer are put back as they were.

    from trainspect import lr_range_test

    def train_step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    result = lr_range_test(model, optimizer, loader, train_step, "runs/lr_range.h5")
    print(result)          # suggested LR and why

Torch is imported inside the functions; ``suggest_lr`` is plain numpy.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from . import format as fmt

# Metric names of a sweep run (the analysis side reads them through the format module).
CONFIG_KEY = fmt.LR_RANGE_CONFIG
SMOOTHED = fmt.LR_RANGE_SMOOTHED
SUGGESTED = fmt.LR_RANGE_SUGGESTED
STEEPEST = fmt.LR_RANGE_STEEPEST
MIN_LOSS = fmt.LR_RANGE_MIN_LOSS


@dataclass
class LRRangeResult:
    lr: float | None                 # the suggested LR (None: the sweep saw no descent)
    reason: str                      # how it was chosen, in words
    steepest_lr: float | None        # LR where the smoothed loss fell fastest (per decade of LR)
    min_loss_lr: float | None        # LR at the smoothed loss minimum
    stopped: str                     # why the sweep ended
    path: str | None = None
    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)

    def __str__(self) -> str:
        head = f"suggested LR {self.lr:.3g}" if self.lr is not None else "no LR suggested"
        return f"{head}: {self.reason} ({self.stopped}; {len(self.lrs)} steps recorded in {self.path})"


def ema_smooth(losses, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (as in Smith's and fastai's LR finders)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, v in enumerate(np.asarray(losses, dtype=np.float64)):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs, smoothed, *, skip_start: float = 0.1) -> tuple[float | None, float | None, float | None, str]:
    """(suggested, steepest, min_loss_lr / 1, reason) from a sweep's LRs and smoothed losses.

    Two classic readings of the curve: the LR where the smoothed loss falls fastest against
    log(LR), and one tenth of the LR at the loss minimum (beyond the minimum the loss is
    already rising). The smaller of the two is suggested: on a short sweep the loss lags the
    LR, which pushes the steepest point towards too-large LRs.
    """
    lrs, s = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(lrs) & (lrs > 0)
    lrs, s = lrs[ok], s[ok]
    if len(s) < 10:
        return None, None, None, f"only {len(s)} finite points: too few to read the curve"
    i_min = int(np.argmin(s))
    min_lr = float(lrs[i_min])
    first = max(1, int(skip_start * len(s)))      # the EMA has not settled over the first points
    if i_min <= first:
        return None, None, min_lr, (f"the loss was lowest at the very start of the sweep (LR {min_lr:.3g}): "
                                    "start the sweep at a smaller LR")
    slope = np.gradient(s[: i_min + 1], np.log10(lrs[: i_min + 1]))
    i_steep = first + int(np.argmin(slope[first:]))
    steep = float(lrs[i_steep])
    drop = float(s[0] - s[i_min])
    if not drop > 0.02 * abs(float(s[0])):
        return None, steep, min_lr, (f"the smoothed loss never fell clearly ({s[0]:.3g} -> {s[i_min]:.3g}): "
                                     "check the step function, or sweep to larger LRs")
    where = f"smoothed loss lowest ({s[i_min]:.3g}) at LR {min_lr:.3g}, steepest descent at LR {steep:.3g}"
    if steep < min_lr / 10:
        return steep, steep, min_lr, f"steepest descent of the smoothed loss ({where}; below minimum / 10)"
    return min_lr / 10, steep, min_lr, f"minimum / 10 ({where})"


def _batches_forever(batches):
    """Yield batches, starting ``batches`` over when it is re-iterable (a DataLoader, a list)."""
    while True:
        it = iter(batches)
        got = False
        for b in it:
            got = True
            yield b
        if not got or it is batches:      # empty, or a one-shot iterator/generator: nothing more
            return


def _set_lr(optimizer, base_lrs, factor) -> float:
    for group, base in zip(optimizer.param_groups, base_lrs):
        if isinstance(group["lr"], float) or not hasattr(group["lr"], "fill_"):
            group["lr"] = base * factor
        else:
            group["lr"].fill_(base * factor)    # a tensor LR (capturable optimizers) stays a tensor
    return base_lrs[0] * factor


def _group_ratios(optimizer) -> list[float]:
    """Each param group's LR as a multiple of group 0's. A warm-up may have every group at 0
    now (the sweep then ran at LR 0 throughout): the scheduler's base LRs (``initial_lr``) tell
    the ratios, else every group sweeps alike."""
    groups = optimizer.param_groups
    ref = [float(g.get("initial_lr", g["lr"])) if float(g["lr"]) == 0 else float(g["lr"]) for g in groups]
    if ref[0] <= 0:
        return [1.0] * len(groups)
    return [r / ref[0] for r in ref]


def lr_range_test(model, optimizer, batches, train_step, path, *, start_lr: float = 1e-7, end_lr: float = 10.0,
                  steps: int = 100, diverge: float = 4.0, beta: float = 0.98, name: str | None = None,
                  restore: bool = True) -> LRRangeResult:
    """Sweep the LR exponentially from ``start_lr`` to ``end_lr`` over ``steps`` calls of
    ``train_step(batch) -> loss`` (which does zero_grad, forward, backward and optimizer.step).

    Group 0's LR goes from ``start_lr`` to ``end_lr``; other param groups keep their ratio to it.
    Stops early once the smoothed loss exceeds ``diverge`` x its minimum (or is NaN/Inf). The
    sweep is recorded to ``path``; afterwards the model's and optimizer's state (weights,
    buffers, momentum, LRs, train/eval mode) are restored unless ``restore=False``.
    Returns an :class:`LRRangeResult` (``.lr`` is the suggestion, ``.reason`` says why).
    """
    import torch

    from .recorder import Recorder, watchers_paused

    if not (0 < start_lr < end_lr < math.inf):
        raise ValueError(f"need 0 < start_lr < end_lr < inf, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if int(steps) < 10:
        raise ValueError(f"steps must be >= 10 to read a curve, got {steps!r}")
    if not (0 <= beta < 1):
        raise ValueError(f"beta (the loss smoothing) must be in [0, 1), got {beta!r}")
    if not (1 < diverge < math.inf):
        raise ValueError(f"diverge must be a factor above 1 (stop when the loss exceeds diverge x its minimum), "
                         f"got {diverge!r}")
    steps = int(steps)
    model_state = copy.deepcopy(model.state_dict()) if restore else None
    opt_state = copy.deepcopy(optimizer.state_dict()) if restore else None
    was_training = model.training
    base_lrs = [start_lr * r for r in _group_ratios(optimizer)]
    growth = (end_lr / start_lr) ** (1.0 / (steps - 1))
    config = {CONFIG_KEY: {"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "diverge": diverge,
                           "beta": beta}}
    lrs, losses, smoothed = [], [], []
    stopped = f"swept {start_lr:.3g} -> {end_lr:.3g} over {steps} steps"
    avg, best = 0.0, math.inf
    try:
        # A run already watching the model (lr_range_test inside its with block) records none of
        # the sweep's steps: they are not its training's.
        with watchers_paused(model), Recorder(str(path), name=name or "lr_range_test", config=config,
                                              stats_every=0, hist_every=0, snapshot_every=0) as rec:
            rec.set_step(0)     # the sweep counts its own steps, whatever the optimizer took before
            rec.watch(model, optimizer)
            model.train()
            source = _batches_forever(batches)
            for i in range(steps):
                batch = next(source, None)
                if batch is None:
                    stopped = f"the batches ran out after {i} steps"
                    break
                lr = _set_lr(optimizer, base_lrs, growth ** i)
                loss = train_step(batch)
                if loss is None:
                    raise TypeError("train_step(batch) must return the loss of that step (a tensor or a float)")
                value = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)   # one sync a step: fine here
                avg = beta * avg + (1 - beta) * value if math.isfinite(value) else math.nan
                smooth = avg / (1 - beta ** (i + 1))
                lrs.append(lr)
                losses.append(value)
                smoothed.append(smooth)
                rec.log({"train/loss": value, SMOOTHED: smooth}, step=i)
                if not math.isfinite(smooth):
                    stopped = f"the loss became {value} at LR {lr:.3g} (step {i})"
                    break
                best = min(best, smooth)
                if i >= 5 and smooth - best > (diverge - 1) * abs(best):   # a loss below 0 too (an NLL)
                    stopped = f"stopped early at LR {lr:.3g}: the smoothed loss exceeded {diverge:g}x its minimum"
                    break
            lr_s, steep, min_lr, reason = suggest_lr(lrs, smoothed)
            last = max(0, len(lrs) - 1)
            rec.log({k: v for k, v in ((SUGGESTED, lr_s), (STEEPEST, steep), (MIN_LOSS, min_lr)) if v is not None},
                    step=last)
    finally:
        if restore:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(opt_state)
        model.train(was_training)
    return LRRangeResult(lr=lr_s, reason=reason, steepest_lr=steep, min_loss_lr=min_lr, stopped=stopped,
                         path=str(rec.path), lrs=lrs, losses=losses, smoothed=smoothed)
