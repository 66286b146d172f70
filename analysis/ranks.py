"""A distributed run read as one run, with rank as a dimension.

Every rank of a job writes its own run file (FORMAT.md, *Distributed runs*): rank 0 the path
the user gave, rank k ``<stem>.rank<k>.h5`` beside it, all tied by ``meta["distributed"]``
(``world_size`` and a ``run_id`` shared by one launch). :func:`open_ranks` finds the siblings
of any one of those files and opens them together; a rank file left over from an earlier
launch into the same path (another ``run_id``) is not mixed in.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainspect.recorder import format as fmt
from trainspect.recorder.format import RunFileError

from .decimate import SeriesView
from .run import VIEW_POINTS, LayerStat, Run, Series, open_run
from .vocab import RunState, loss_roles


@dataclass(frozen=True)
class RankMatrix:
    """One metric of every rank on a common step axis."""
    steps: np.ndarray    # int64 [S], the union of the steps of all ranks, sorted
    ranks: list          # [R] rank numbers, the row order of ``values``
    values: np.ndarray   # float64 [R, S], NaN where a rank has no value at a step

    def __len__(self):
        return len(self.steps)

    def row(self, rank: int) -> np.ndarray:
        return self.values[self.ranks.index(rank)]


def dist_info(run) -> dict | None:
    """``meta["distributed"]`` of an open run, or None for a single-process run."""
    info = (run.meta or {}).get(fmt.META_DISTRIBUTED)
    return info if isinstance(info, dict) and "rank" in info else None


def last_per_step(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Steps sorted, one value each (the last one logged at a repeated step)."""
    steps, values = np.asarray(series.steps), np.asarray(series.values, dtype=np.float64)
    if len(steps) == 0:
        return steps, values
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    keep = np.append(steps[1:] != steps[:-1], True)
    return steps[keep], values[keep]


def align(per_rank: dict) -> RankMatrix:
    """{rank: Series} (or SeriesView) -> a RankMatrix on the union of their steps."""
    ranks = sorted(per_rank)
    cols = [last_per_step(per_rank[r]) for r in ranks]
    steps = np.unique(np.concatenate([s for s, _ in cols])) if cols else np.empty(0, np.int64)
    values = np.full((len(ranks), len(steps)), np.nan)
    for i, (s, v) in enumerate(cols):
        values[i, np.searchsorted(steps, s)] = v
    return RankMatrix(steps.astype(np.int64), ranks, values)


def metric_names(run) -> list:
    """A run's metric names without reading points (``scalar_names()`` of a Run opened with
    kept points loads every metric of a run up to 8 M rows)."""
    return run.metric_names() if hasattr(run, "metric_names") else run.scalar_names()


def train_loss(run) -> str | None:
    """The training loss's name (``Run.loss_roles()["train"]``), read without loading points."""
    return loss_roles(metric_names(run), (run.meta or {}).get(fmt.META_ROLES),
                      getattr(run, "point_counts", None)).get("train")


def series_views(run, names, capacity: int = VIEW_POINTS) -> dict:
    """{name: SeriesView} of the metrics ``names`` the run has: ``Run.scalar_views`` (bounded,
    incremental), or every point of a run object without it (stride 1: the whole series)."""
    names = list(dict.fromkeys(n for n in names if n is not None))
    if hasattr(run, "scalar_views"):
        return run.scalar_views(names, capacity)
    present, out = set(run.scalar_names()), {}
    for name in names:
        if name in present:
            s = run.scalar(name)
            v = np.asarray(s.values, dtype=np.float64)
            nan = np.isnan(v)
            out[name] = SeriesView(np.asarray(s.steps), v, len(v), int(nan.sum()), int((~nan & ~np.isfinite(v)).sum()),
                                   np.arange(len(v), dtype=np.int64), 1)
    return out


def sample_part(views: dict) -> dict:
    """{rank: SeriesView} -> the points of each view in the coarsest plain sample among them
    (positions divisible by the largest stride), plus each view's last point.

    A decimated view also keeps each bucket's extremes, at other steps in each rank; aligning
    them would compare a rank's spike with another's ordinary point, or leave it alone in its
    column. Ranks that log the same steps (DDP: every rank every step) share the sample's
    positions, so the columns every rank has are an every-J-th-step sample of the run (what the
    medians and step-to-step noise of the rank rules rest on). Views holding every point
    (stride 1, up to 131,072 points) are returned whole: the full series."""
    stride = max((v.stride for v in views.values()), default=1)
    if stride == 1:
        return dict(views)
    out = {}
    for rank, v in views.items():
        index = v.index if v.index is not None else np.arange(len(v), dtype=np.int64)
        keep = index % stride == 0
        keep[-1:] = True
        out[rank] = replace(v, steps=v.steps[keep], values=v.values[keep], index=index[keep])
    return out


def _snap(sampled: dict) -> dict:
    """Samples on different steps: each rank's points moved to the nearest step of the first
    rank's sample (those within one sample spacing of one; the others left out)."""
    first = next(iter(sampled))
    grid = np.unique(sampled[first].steps)
    if len(grid) < 2:
        return sampled
    spacing = float(np.median(np.diff(grid)))
    out = {}
    for rank, v in sampled.items():
        if rank == first or not len(v):
            out[rank] = v
            continue
        i = np.clip(np.searchsorted(grid, v.steps), 1, len(grid) - 1)
        left, right = grid[i - 1], grid[i]
        near = np.where(v.steps - left <= right - v.steps, left, right)
        ok = np.abs(v.steps - near) <= spacing
        out[rank] = replace(v, steps=near[ok], values=v.values[ok], index=None)
    return out


def align_views(views: dict) -> RankMatrix:
    """{rank: SeriesView} -> a RankMatrix: of decimated views, their common plain sample
    (:func:`sample_part`). Ranks whose samples fall on different steps (a rank that logged a
    step the others did not shifts its every-J-th positions) share few of them: then each
    rank's sample is aligned on the nearest step of the first rank's."""
    sampled = sample_part(views)
    m = align(sampled)
    if len(views) < 2 or all(v.stride == 1 for v in views.values()):
        return m
    shared = int(np.all(np.isfinite(m.values), axis=0).sum())
    fewest = min(int(np.isfinite(v.values).sum()) for v in sampled.values())
    return m if 2 * shared >= fewest else align(_snap(sampled))


class RankedRun:
    """The rank files of one distributed run, opened together. Use :func:`open_ranks`.

    ``runs`` maps rank -> :class:`Run`; ``missing`` lists ranks whose file is absent or
    unreadable (a job still starting, a node that died before writing) and ``foreign`` the
    ranks whose file belongs to another launch (other ``run_id``).
    """

    def __init__(self, runs: dict, world_size: int, run_id: str, *, missing=(), foreign=(), owned=()):
        self.runs = dict(sorted(runs.items()))
        self.world_size = int(world_size)
        self.run_id = run_id
        self.missing = sorted(missing)
        self.foreign = sorted(foreign)
        self._owned = set(owned)     # ranks whose Run this object opened (and closes)

    @property
    def ranks(self) -> list:
        return list(self.runs)

    @property
    def primary(self) -> Run:
        """Rank 0's run (or the lowest rank present): names, layout, config."""
        return next(iter(self.runs.values()))

    @property
    def name(self) -> str:
        return self.primary.name

    def scalar_names(self) -> list:
        """Every metric any rank logged, in rank 0's order first."""
        out, seen = [], set()
        for run in self.runs.values():
            for n in run.scalar_names():
                if n not in seen:
                    seen.add(n)
                    out.append(n)
        return out

    def scalar(self, name: str) -> dict:
        """{rank: Series} of a metric, for the ranks that logged it."""
        out = {}
        for rank, run in self.runs.items():
            if name in run.scalar_names():
                out[rank] = run.scalar(name)
        return out

    def views(self, names, capacity: int = VIEW_POINTS) -> dict:
        """{rank: {name: SeriesView}}: bounded views of ``names`` in each rank's file (see
        ``Run.scalar_views``; memory independent of run length, a later call reads only new rows)."""
        return {rank: series_views(run, names, capacity) for rank, run in self.runs.items()}

    def matrix(self, name: str) -> RankMatrix:
        """``name`` of every rank that logged it, aligned on steps (NaN where missing)."""
        return align(self.scalar(name))

    def step_times(self) -> RankMatrix:
        return self.matrix(fmt.SYS_STEP_TIME)

    def refresh(self) -> int:
        return sum(run.refresh() for run in self.runs.values())

    def describe(self) -> str:
        """One line: how many ranks, which are missing or from another launch."""
        text = f"{len(self.runs)} of {self.world_size} ranks"
        if self.missing:
            text += f"; no file for rank(s) {', '.join(map(str, self.missing))}"
        if self.foreign:
            text += f"; rank(s) {', '.join(map(str, self.foreign))} from another launch ignored"
        return text

    def files(self) -> dict:
        return {rank: run.path for rank, run in self.runs.items()}

    def close(self) -> None:
        for rank in self._owned:
            self.runs[rank].close()
        self._owned.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"RankedRun({self.name!r}, ranks={self.ranks}, world_size={self.world_size})"


def _try_open(path: Path, keep_points: bool = True):
    try:
        return open_run(path, keep_points=keep_points)
    except (RunFileError, OSError):
        return None


def open_ranks(run_or_path, reuse=None, keep_points: bool = True) -> RankedRun | None:
    """Every rank of the distributed run that ``run_or_path`` (any rank's file, or an open
    :class:`Run`) belongs to, or None if it is a single-process run. An open Run passed in
    stays open (the caller owns it); the siblings are opened here and closed by ``close()``.
    ``reuse(path)``: an open Run of that sibling the caller already has (or None); it is used
    instead of opening the file a second time, and left open. False: the caller is opening that
    file itself; the rank counts as missing for now. ``keep_points=False``: the files opened
    here hold no metric's points (see ``open_run``; the app reads them with ``scalar_rows``)."""
    given = run_or_path if hasattr(run_or_path, "scalar_names") else open_run(run_or_path, keep_points=keep_points)   # a Run (or a wrapper)
    info = dist_info(given)
    if info is None:
        if given is not run_or_path:
            given.close()
        return None
    own_given = given is not run_or_path
    rank0 = fmt.split_rank_path(given.path)[0]
    world, run_id = int(info.get("world_size") or 1), str(info.get("run_id", ""))
    runs, owned, missing, foreign = {int(info["rank"]): given}, set(), [], []
    if own_given:
        owned.add(int(info["rank"]))
    for rank in range(world):
        if rank in runs:
            continue
        path = fmt.rank_path(rank0, rank)
        borrowed = reuse(path) if reuse is not None else None
        if borrowed is False:
            missing.append(rank)
            continue
        other = borrowed if borrowed is not None else (_try_open(path, keep_points) if path.exists() else None)
        if other is None:
            missing.append(rank)
            continue
        oinfo = dist_info(other)
        if oinfo is None or str(oinfo.get("run_id", "")) != run_id or int(oinfo["rank"]) != rank:
            if borrowed is None:
                other.close()
            foreign.append(rank)
            continue
        runs[rank] = other
        if borrowed is None:
            owned.add(rank)
    return RankedRun(runs, world, run_id, missing=missing, foreign=foreign, owned=owned)



@dataclass(frozen=True)
class RankSummary:
    """One rank at a glance (``trainspect info``, the app's rank list)."""
    rank: int
    path: Path
    status: str              # RunStatus.describe()
    last_step: int
    loss: str | None         # the training loss's name, if logged
    last_loss: float         # NaN if none
    median_step_time: float  # seconds, NaN if not recorded
    first_nonfinite: int | None   # first step with a non-finite loss or gradient


NONFINITE_SERIES = (fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS)


def _first_nonfinite(views: dict) -> int | None:
    first = None
    for name, v in views.items():
        bad = (v.values > 0) if name == fmt.SYS_NONFINITE_GRADS else ~np.isfinite(v.values)
        idx = np.flatnonzero(bad)
        if idx.size:
            step = int(v.steps[idx[0]])
            first = step if first is None else min(first, step)
    return first


def first_nonfinite_step(run) -> int | None:
    """First step where the training loss, the global gradient norm or the non-finite
    gradient count says NaN/Inf, or None. Exact, read through bounded views (the first
    non-finite and first positive point of a series are always kept)."""
    return _first_nonfinite(series_views(run, [train_loss(run), *NONFINITE_SERIES]))


def summaries(ranked: RankedRun) -> list:
    """One :class:`RankSummary` per rank, read through bounded views (``Run.scalar_views``):
    memory independent of run length (``trainspect info`` on a long distributed run). The last
    loss and the first non-finite step are exact; the median step time is that of every point
    up to 131,072 step times, beyond of the view's sample."""
    out = []
    for rank, run in ranked.runs.items():
        loss = train_loss(run)
        views = series_views(run, [loss, fmt.SYS_STEP_TIME, *NONFINITE_SERIES])
        last_loss = float("nan")
        if loss is not None and len(s := views.get(loss, ())):
            last_loss = float(s.values[-1])
        st = views.get(fmt.SYS_STEP_TIME)
        st = sample_part({rank: st})[rank] if st is not None else None   # the plain sample: no extremes
        times = st.values[np.isfinite(st.values)] if st is not None else np.empty(0)
        med = float(np.median(times)) if times.size else float("nan")
        status = run.status()
        out.append(RankSummary(rank, run.path, status.describe(), status.last_step, loss, last_loss, med,
                               _first_nonfinite({n: v for n, v in views.items() if n != fmt.SYS_STEP_TIME})))
    return out


def rank_path(path, rank: int) -> str:
    """The file name rank ``rank`` of the run whose rank-0 file is ``path`` writes (FORMAT.md)."""
    return str(fmt.rank_path(path, rank))


def rank_of(path) -> tuple[str, int]:
    """(rank-0 path, rank) a file name says: ``runs/exp1.rank2.h5`` -> (``runs/exp1.h5``, 2)."""
    base, rank = fmt.split_rank_path(path)
    return str(base), rank


def fold_rank_paths(paths) -> list:
    """``paths`` without the rank-k files (k > 0) whose rank-0 file is also in it: a distributed
    run opens as one run (its rank 0), the other ranks are read beside it."""
    given = {str(p) for p in paths}
    return [p for p in paths if (lambda base, rank: rank == 0 or base not in given)(*rank_of(p))]


SHARDED_NORM_STATS = ("grad_norm", "weight_norm", "update_norm")


def global_norms(ranked: RankedRun, stat: str) -> LayerStat:
    """Per-parameter norms of the whole model from a sharded run (FSDP2 ``fully_shard``, DTensor).

    Each rank's file holds the norm of its own shard of the parameters listed in
    ``meta["model"]["sharded_params"]``; the global norm is sqrt(sum over ranks of shard
    norm^2), at the steps every rank recorded. Unsharded parameters (replicas) keep rank 0's
    norm. Raises ValueError when a rank's file is missing (its shards cannot be made up)."""
    if stat not in SHARDED_NORM_STATS:
        raise ValueError(f"only norms combine across shards ({', '.join(SHARDED_NORM_STATS)}), not {stat!r}")
    if ranked.missing or ranked.foreign:
        raise ValueError(f"{ranked.name}: {ranked.describe()}: global norms need every rank's shards")
    tables = {rank: run.layer_stat(stat) for rank, run in ranked.runs.items()}
    common = None
    for t in tables.values():
        common = set(t.steps.tolist()) if common is None else common & set(t.steps.tolist())
    steps = np.array(sorted(common or ()), dtype=np.int64)
    rows = []
    for t in tables.values():
        last = {int(s): i for i, s in enumerate(t.steps)}          # the last record of a repeated step
        rows.append(t.values[[last[int(s)] for s in steps]].astype(np.float64))
    stack = np.stack(rows) if rows else np.empty((0, 0, 0))
    primary = tables[ranked.ranks[0]]
    out = stack[0].copy() if len(stack) else np.empty((0, len(primary.layers)))
    sharded = [i for i in (ranked.primary.meta.get("model") or {}).get("sharded_params", []) if i < out.shape[1]]
    if sharded:
        out[:, sharded] = np.sqrt(np.sum(stack[:, :, sharded] ** 2, axis=0))
    return LayerStat(steps, out.astype(np.float32), primary.layers)


def first_stopped(ranked: RankedRun, this_rank: int):
    """(rank, RunStatus) of the rank that stopped before ``this_rank``'s file did: a rank that
    crashed or whose writer went silent at an earlier step than this one, or while this one
    went on (the earliest such). None when no other rank stopped first. torchrun SIGTERMs the
    other ranks when one dies: rank 0 then reads `terminated (SIGTERM)` and the rank that died
    is the one to name (trial 17, F11)."""
    statuses = {rank: run.status() for rank, run in ranked.runs.items()}
    mine = statuses.get(this_rank)
    if mine is None:
        return None
    stopped = [(st.last_step, st.heartbeat, rank) for rank, st in statuses.items()
               if rank != this_rank and RunState(st.state).dead
               and (not RunState(mine.state).dead or st.last_step < mine.last_step)]
    if not stopped:
        return None
    rank = min(stopped)[2]
    return rank, statuses[rank]


def stopped_first(ranked: RankedRun, this_rank: int) -> dict | None:
    """The rank that stopped before ``this_rank``'s file (:func:`first_stopped`) as a record:
    ``{rank, status, last_step, error, text}``, ``text`` the headline sentence; None if none."""
    first = first_stopped(ranked, this_rank)
    if first is None or this_rank not in ranked.runs:
        return None
    rank, st = first
    return {"rank": rank, "status": st.state, "last_step": st.last_step, "error": st.error,
            "text": stop_order_text(rank, st, this_rank, ranked.runs[this_rank].status())}


def stop_order_text(rank: int, status, this_rank: int, this_status) -> str:
    """"rank 1 stopped first, ...; rank 0 (this file) then ..." for a headline."""
    first = status.describe()
    if status.state == RunState.STALE:
        first += ": its process was killed or hung"
    then = "then " if RunState(this_status.state).dead else ""
    return f"rank {rank} stopped first: {first}; rank {this_rank} (this file) {then}{this_status.describe()}"
