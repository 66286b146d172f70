"""Rules across the ranks of a distributed run: each finding names the rank(s).

- ``straggler_rank``: one rank is consistently slower (step time, or data-loader wait: under
  DDP every rank waits for the slowest at the gradient all-reduce, so the step times match
  and only the rank-local data wait shows which rank holds the others up);
- ``rank_nonfinite_first``: one rank's values went NaN/Inf before the others' (a rank-local
  batch; the all-reduce then spreads it to every rank's gradients);
- ``rank_loss_divergence``: the loss level of some ranks stays apart from the others' by far
  more than their step-to-step noise (inconsistent data sharding, or unsynchronised models).

``rank_signals(run)`` reads what they need from the sibling rank files of ``run`` (the advisor's
``extract`` calls it); the symptom modules ``symptoms/straggler_rank.py`` and ``rank_*.py`` run
the detectors here on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from trainspect.recorder import format as fmt

from ..findings import Evidence, Finding
from ..ranks import NONFINITE_SERIES, RankMatrix, align_views, dist_info, open_ranks, train_loss
from .series import first_nonfinite, rounded

MIN_STEPS = 10            # fewer steps seen by every rank: the timing and loss rules say nothing


def _ranks_text(ranks) -> str:
    ranks = list(ranks)
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    return "ranks " + ", ".join(map(str, ranks[:-1])) + f" and {ranks[-1]}"


def _seconds(v: float) -> str:
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def _complete_columns(m: RankMatrix):
    """Steps every rank has a finite value for (the rules compare ranks step by step)."""
    ok = np.all(np.isfinite(m.values), axis=0)
    return m.steps[ok], m.values[:, ok]


# ------------------------------------------------------------------ straggler
def slow_rank(m: RankMatrix, *, min_steps: int = MIN_STEPS, ratio: float = 1.5, min_excess_s: float = 0.002,
              share: float = 0.7):
    """(rank, its median, the others' median, share of steps it was slowest) of the rank whose
    values are ``ratio`` x the other ranks' median (and ``min_excess_s`` above it) and the
    largest at >= ``share`` of the steps; None if no rank is."""
    if len(m.ranks) < 2:
        return None
    steps, v = _complete_columns(m)
    if len(steps) < min_steps:
        return None
    best = None
    for i, rank in enumerate(m.ranks):
        others = np.median(np.delete(v, i, axis=0), axis=0)
        mine, theirs = float(np.median(v[i])), float(np.median(others))
        slowest = float(np.mean(np.argmax(v, axis=0) == i))
        if mine >= ratio * theirs and mine - theirs >= min_excess_s and slowest >= share:
            if best is None or mine / max(theirs, 1e-12) > best[1] / max(best[2], 1e-12):
                best = (rank, mine, theirs, slowest)
    return best


TIMING_SERIES = (fmt.SYS_STEP_TIME, fmt.SYS_DATA_WAIT)


def detect_straggler(matrices: dict, **kw) -> Finding | None:
    """``matrices``: {series name: RankMatrix} of timing series (step time, data wait)."""
    hits = {}
    for name in TIMING_SERIES:
        m = matrices.get(name)
        if m is not None and (hit := slow_rank(m, **kw)) is not None:
            hits[name] = (hit, m)
    if not hits:
        return None
    rank = max(hits.values(), key=lambda h: h[0][1] / max(h[0][2], 1e-12))[0][0]
    evidence = []
    for name, ((r, mine, theirs, slowest), m) in hits.items():
        if r != rank:
            continue
        label = fmt.scalar_spec(name).label
        evidence.append(Evidence(
            series=name, threshold=kw.get("ratio", 1.5),
            text=(f"rank {r}'s median {label} is {_seconds(mine)}, {mine / max(theirs, 1e-12):.1f}x the other "
                  f"ranks' {_seconds(theirs)}; it is the slowest at {slowest:.0%} of the steps"),
            steps=[int(m.steps[0]), int(m.steps[-1])], values=rounded([mine, theirs])))
    step_time = matrices.get(fmt.SYS_STEP_TIME)
    if fmt.SYS_STEP_TIME not in hits and step_time is not None and len(_complete_columns(step_time)[0]):
        _, v = _complete_columns(step_time)
        evidence.append(Evidence(
            series=fmt.SYS_STEP_TIME,
            text=(f"the step times of all ranks match (median {_seconds(float(np.median(v)))}): the others wait "
                  f"for rank {rank} at every gradient all-reduce, so the whole job runs at its pace")))
    span = next(iter(hits.values()))[1].steps
    what = "data-loader wait" if fmt.SYS_STEP_TIME not in hits else "step time"
    return Finding(symptom="straggler_rank", severity="warning", ranks=[rank],
                   title=f"rank {rank} is a straggler: its {what} is consistently longer than the other ranks'",
                   first_step=int(span[0]), last_step=int(span[-1]), evidence=evidence)


# ------------------------------------------------------------------ non-finite first
INPUT_SERIES = (fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD)   # a rank's batch statistics: its data went NaN
FORWARD, BACKWARD = 0, 1      # at one step a NaN in the loss precedes one in the gradients


def first_bad(per_series: dict):
    """(step, stage, series, value) of the first non-finite value of one rank, or None.
    ``per_series``: {name: (steps, values)}; gradient series count as later than losses."""
    best = None
    for name, (steps, values) in per_series.items():
        steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
        if name == fmt.SYS_NONFINITE_GRADS:
            bad = np.flatnonzero(values > 0)
        else:
            bad = np.flatnonzero(~np.isfinite(values))
        if not bad.size:
            continue
        stage = BACKWARD if name in (fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS) else FORWARD
        hit = (int(steps[bad[0]]), stage, name, float(values[bad[0]]))
        if best is None or hit[:2] < best[:2]:
            best = hit
    return best


def detect_rank_nonfinite_first(per_rank: dict) -> Finding | None:
    """``per_rank``: {rank: {series: (steps, values)}}. Fires when some rank's first NaN/Inf
    comes before (step, then forward before backward) another rank's, or no other rank has any."""
    firsts = {r: first_bad(series) for r, series in per_rank.items()}
    bad = {r: f for r, f in firsts.items() if f is not None}
    if not bad or len(per_rank) < 2:
        return None
    key = min(f[:2] for f in bad.values())
    first = sorted(r for r, f in bad.items() if f[:2] == key)
    later = sorted(r for r in per_rank if r not in first)
    if not later:
        return None     # every rank at once: nothing rank-specific (the nan_inf rule covers it)
    step, _, name, value = bad[first[0]]
    evidence = [Evidence(series=f[2], steps=[f[0]], values=rounded([f[3]]),
                         text=(f"rank {r}: first non-finite value at step {f[0]} in {f[2]} ({f[3]:g})"
                               if f[2] != fmt.SYS_NONFINITE_GRADS else
                               f"rank {r}: {int(f[3])} non-finite gradient entries at step {f[0]}"))
                for r, f in sorted(bad.items(), key=lambda kv: (kv[1][:2], kv[0]))]
    clean = [r for r in later if r not in bad]
    if clean:
        evidence.append(Evidence(series=name, text=f"{_ranks_text(clean)}: no non-finite value at all"))
    return Finding(symptom="rank_nonfinite_first", severity="error", ranks=first,
                   title=f"{_ranks_text(first)} went non-finite first: {name} at step {step}",
                   first_step=step, last_step=max(f[0] for f in bad.values()), evidence=evidence,
                   facts={"forward_first": key[1] == FORWARD})


def first_nonfinite_rank(per_rank: dict):
    """(rank, step) of the one rank whose values went NaN/Inf before every other rank's (a
    rank-local cause), else None (no rank, a single rank, or several at once)."""
    bad = {r: f for r, f in ((r, first_bad(s)) for r, s in per_rank.items()) if f is not None}
    if not bad or len(per_rank) < 2:
        return None
    key = min(f[:2] for f in bad.values())
    first = [r for r, f in bad.items() if f[:2] == key]
    return (first[0], key[0]) if len(first) == 1 else None


# ------------------------------------------------------------------ loss divergence
def _noise(v: np.ndarray) -> float:
    """Step-to-step noise of one rank's loss (robust sigma of first differences / sqrt 2)."""
    d = np.diff(v)
    if d.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def detect_rank_loss_divergence(m: RankMatrix, series: str, *, min_steps: int = 2 * MIN_STEPS,
                                rel_gap: float = 0.2, noise_gap: float = 3.0, consistent: float = 0.8,
                                tail: float = 1 / 3) -> Finding | None:
    """Ranks whose loss level over the last ``tail`` of the run stays away from the other
    ranks' median by > ``rel_gap`` of that level and > ``noise_gap`` x the step-to-step
    noise, on the same side at >= ``consistent`` of those steps."""
    if len(m.ranks) < 2:
        return None
    steps, v = _complete_columns(m)
    if len(steps) < min_steps:
        return None
    t0 = int(len(steps) * (1 - tail))
    tail_v = v[:, t0:]
    noise = float(np.median([_noise(row) for row in tail_v]))
    out = []
    for i, rank in enumerate(m.ranks):
        others = np.median(np.delete(tail_v, i, axis=0), axis=0)
        mine, theirs = float(np.median(tail_v[i])), float(np.median(others))
        gap = mine - theirs
        side = float(np.mean(np.sign(tail_v[i] - others) == np.sign(gap)))
        if abs(gap) > rel_gap * abs(theirs) and abs(gap) > noise_gap * noise and side >= consistent:
            out.append((rank, mine, theirs, side))
    if not out:
        return None
    named = [r for r, *_ in out]
    head = v[:, : max(2, len(steps) // 10)]
    head_spread = float(np.ptp(np.median(head, axis=1)))
    tail_spread = float(np.ptp(np.median(tail_v, axis=1)))
    evidence = [Evidence(series=series, threshold=rel_gap, steps=[int(steps[t0]), int(steps[-1])],
                         values=rounded([mine, theirs]),
                         text=(f"rank {r}'s {series} over steps {int(steps[t0])}-{int(steps[-1])}: median {mine:.4g}, "
                               f"the other ranks' {theirs:.4g} ({abs(mine - theirs) / max(abs(theirs), 1e-12):.0%} "
                               f"apart, {'above' if mine > theirs else 'below'} them at {side:.0%} of the steps; "
                               f"step-to-step noise {noise:.3g})"))
                for r, mine, theirs, side in out]
    evidence.append(Evidence(series=series, values=rounded([head_spread, tail_spread]),
                             text=(f"spread between the ranks' levels: {head_spread:.4g} over steps "
                                   f"{int(steps[0])}-{int(steps[head.shape[1] - 1])}, {tail_spread:.4g} at the end")))
    many = len(named) > len(m.ranks) // 2
    title = (f"the losses of {_ranks_text(named)} drift apart" if many else
             f"{_ranks_text(named)}: {series} stays apart from the other ranks'")
    return Finding(symptom="rank_loss_divergence", severity="warning", ranks=named, title=title,
                   first_step=int(steps[t0]), last_step=int(steps[-1]), evidence=evidence)


def weights_in_sync(ranked, *, rtol: float = 1e-4):
    """True if every rank's per-parameter weight norms agree at their last common record (DDP
    and FSDP keep replicas equal), False if they differ, None if there is nothing to compare."""
    tables = {}
    for rank, run in ranked.runs.items():
        if "weight_norm" in run.layer_stat_names():
            n = run.record_count(fmt.WEIGHTS)
            tables[rank] = run.layer_stat("weight_norm", max(0, n - 8), n)
    if len(tables) < 2:
        return None
    common = set.intersection(*(set(t.steps.tolist()) for t in tables.values()))
    if not common:
        return None
    step = max(common)
    rows = np.stack([t.values[int(np.flatnonzero(t.steps == step)[-1])] for t in tables.values()]).astype(np.float64)
    ok = np.all(np.isfinite(rows), axis=0)
    if not ok.any():
        return None
    rows = rows[:, ok]
    return bool(np.all(np.ptp(rows, axis=0) <= rtol * np.max(np.abs(rows), axis=0) + 1e-12))


# ------------------------------------------------------------------ what the rules read
@dataclass
class RankSignals:
    """A distributed run's series across its ranks, read once (the rank files are closed after)."""
    ranks: list
    timing: dict = field(default_factory=dict)       # timing series name -> RankMatrix
    nonfinite: dict = field(default_factory=dict)    # rank -> {series: (steps, values)}
    loss: tuple | None = None                        # (name, RankMatrix of each rank's loss up to its first NaN)
    inputs: dict = field(default_factory=dict)       # rank -> {sys/input_mean|std: (steps, values)}
    in_sync: bool | None = None                      # weights_in_sync(); None: nothing to compare


def rank_signals(run, reuse=None) -> RankSignals | None:
    """What the rank rules need from the run ``run`` belongs to; None for one process (or a
    distributed run with fewer than two readable rank files). ``reuse``: see ``open_ranks``.

    Every rank's series are read as bounded views (``Run.scalar_views``; siblings opened here
    hold no points): memory does not grow with the run, and a sibling ``reuse`` hands in (tail
    keeps them open) reads only the rows added since. Up to 131,072 points per series the
    rules see every point; beyond, the timing and loss rules compare the ranks on their common
    plain sample (``ranks.align_views``) and the first non-finite step of each rank stays exact."""
    if dist_info(run) is None:
        return None
    ranked = open_ranks(run, reuse=reuse, keep_points=False)
    with ranked:
        if len(ranked.runs) < 2:
            return None
        loss = train_loss(ranked.primary)
        views = ranked.views([loss, *TIMING_SERIES, *NONFINITE_SERIES, *INPUT_SERIES])
        sig = RankSignals(ranked.ranks)
        for name in TIMING_SERIES:
            per_rank = {r: v[name] for r, v in views.items() if name in v}
            if per_rank:
                sig.timing[name] = align_views(per_rank)
        for rank, v in views.items():
            sig.nonfinite[rank] = {n: (v[n].steps, v[n].values) for n in (loss, *NONFINITE_SERIES)
                                   if n is not None and n in v}
            sig.inputs[rank] = {n: (v[n].steps, v[n].values) for n in INPUT_SERIES if n in v}
        if loss is not None:
            # each rank's loss up to its first NaN/Inf: a rank gone NaN is broken, not diverging
            sig.loss = (loss, align_views({r: _finite_part(v[loss]) for r, v in views.items() if loss in v}))
        sig.in_sync = weights_in_sync(ranked)
    return sig


def _finite_part(v):
    """A view up to its first NaN/Inf (kept in every view: the cut is where the series' is)."""
    i = first_nonfinite(v.values)
    if i is None:
        return v
    return replace(v, steps=v.steps[:i], values=v.values[:i], index=None if v.index is None else v.index[:i])
