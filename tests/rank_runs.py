"""Synthetic distributed runs written straight to rank files (RunFileWriter: numpy columns, no
training), and the full-series reading of the rank rules that the bounded one is checked against."""
from __future__ import annotations

import numpy as np

from trainspect.analysis.advisor.rank_rules import TIMING_SERIES, RankSignals, weights_in_sync
from trainspect.analysis.advisor.series import first_nonfinite
from trainspect.analysis.ranks import NONFINITE_SERIES, RankSummary, align, open_ranks
from trainspect.analysis.run import Series
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter

METRICS = ("train/loss", fmt.SYS_STEP_TIME, fmt.SYS_DATA_WAIT, fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS)
KINDS = ("healthy", "spike", "nan", "straggler", "diverging")
BLOCK = 1_000_000


def rank_series(kind: str, lengths: list, rng, target: int) -> list:
    """Per rank {metric: values} of a DDP-like job: one shared step time (the all-reduce makes the
    ranks wait for each other), rank-local data waits and losses; ``kind`` plants one problem on
    rank ``target``."""
    n = max(lengths)
    t = np.arange(n) / n
    step_time = 0.1 * rng.lognormal(0, 0.05, n)
    out = []
    for r in range(len(lengths)):
        out.append({"train/loss": (0.1 + 2.2 * np.exp(-12 * t)) * rng.lognormal(0, 0.15, n),
                    fmt.SYS_STEP_TIME: step_time * rng.lognormal(0, 0.01, n),
                    fmt.SYS_DATA_WAIT: rng.lognormal(np.log(2e-4), 0.5, n),
                    fmt.SYS_GRAD_NORM: rng.lognormal(0, 0.3, n),
                    fmt.SYS_NONFINITE_GRADS: np.zeros(n)})
    mine = out[target]
    if kind == "spike":   # one-step spikes and slow batches on one rank: no rank problem
        mine["train/loss"][rng.choice(np.arange(n // 10, n), 6, replace=False)] = 40.0
        mine[fmt.SYS_DATA_WAIT][rng.choice(n, 5, replace=False)] = 2.0
    elif kind == "nan":   # a rank-local NaN loss; the all-reduce spreads it at the next step
        s = int(rng.integers(n // 3, min(lengths) - 10))
        mine["train/loss"][s:] = np.nan
        for r, series in enumerate(out):
            series[fmt.SYS_GRAD_NORM][s + 1:] = np.nan
            series[fmt.SYS_NONFINITE_GRADS][s + 1:] = 1000
            if r != target:
                series["train/loss"][s + 1:] = np.nan
    elif kind == "straggler":
        mine[fmt.SYS_DATA_WAIT] = rng.lognormal(np.log(0.03), 0.2, n)
    elif kind == "diverging":   # a rank reading another shard: its loss level stays apart
        mine["train/loss"][n // 2:] *= 1.6
    return [{k: v[:m] for k, v in series.items()} for series, m in zip(out, lengths)]


def write_rank_files(path, per_rank: list, run_id: str = "synthetic", starts=None) -> list:
    """Rank files of one launch at ``path`` (rank 0) and ``<stem>.rank<k>.h5``; one row per
    metric and step, in step order, from step ``starts[rank]`` (0)."""
    files = []
    for rank, series in enumerate(per_rank):
        file = fmt.rank_path(path, rank)
        w = RunFileWriter(file)
        w.start({"name": "exp", fmt.META_DISTRIBUTED: {"rank": rank, "world_size": len(per_rank),
                                                       "run_id": run_id, "rank0_file": fmt.rank_path(path, 0).name}})
        w.add_tags(list(series))
        cols = np.stack([np.asarray(v, np.float64) for v in series.values()], axis=1)   # [steps, metrics]
        n, k = cols.shape
        first = starts[rank] if starts else 0
        for lo in range(0, n, BLOCK // k):
            hi = min(n, lo + BLOCK // k)
            steps = np.repeat(np.arange(first + lo, first + hi, dtype=np.int64), k)
            w.append_scalars(steps, np.tile(np.arange(k, dtype=np.int32), hi - lo), cols[lo:hi].ravel(), steps * 0.1)
            w.flush(first + hi - 1)
        w.close(last_step=first + n - 1)
        files.append(file)
    return files


def live_rank_writers(path, tags, world_size: int = 2, run_id: str = "launch-1", flush_every: float = 0.1) -> list:
    """The rank files of one launch open for writing, as a live distributed run leaves them
    (started, ``tags`` added, nothing written yet); the caller closes them."""
    writers = []
    for rank in range(world_size):
        w = RunFileWriter(fmt.rank_path(path, rank))
        w.start({"name": "exp", fmt.META_DISTRIBUTED: {"rank": rank, "world_size": world_size, "run_id": run_id}},
                flush_every=flush_every)
        w.add_tags(list(tags))
        writers.append(w)
    return writers


def append_columns(writer, steps, *columns) -> None:
    """One row per step and column (tag ids 0, 1, ... in ``columns`` order), wall = 1e9 + step ms."""
    steps = np.asarray(steps, np.int64)
    k = len(columns)
    writer.append_scalars(np.repeat(steps, k), np.tile(np.arange(k), len(steps)),
                          np.column_stack(columns).ravel(), 1e9 + np.repeat(steps, k) * 1e-3)


# ---------------------------------------------------------------- the full-series reading
def _finite_part(s: Series) -> Series:
    i = first_nonfinite(s.values)
    return s if i is None else Series(s.steps[:i], s.values[:i], s.wall[:i])


def full_rank_signals(run) -> RankSignals | None:
    """rank_rules.rank_signals as it was before bounded views: every rank's whole series."""
    ranked = open_ranks(run)
    if ranked is None:
        return None
    with ranked:
        if len(ranked.runs) < 2:
            return None
        names = ranked.scalar_names()
        sig = RankSignals(ranked.ranks, timing={n: ranked.matrix(n) for n in TIMING_SERIES if n in names})
        loss = ranked.primary.loss_roles().get("train")
        for rank, r in ranked.runs.items():
            present = set(r.scalar_names())
            sig.nonfinite[rank] = {n: (r.scalar(n).steps, r.scalar(n).values)
                                   for n in (loss, *NONFINITE_SERIES) if n is not None and n in present}
        if loss is not None:
            sig.loss = (loss, align({r: _finite_part(s) for r, s in ranked.scalar(loss).items()}))
        sig.in_sync = weights_in_sync(ranked)
    return sig


def full_summaries(ranked) -> list:
    """ranks.summaries as it was before bounded views: every rank's whole series."""
    out = []
    for rank, run in ranked.runs.items():
        names = set(run.scalar_names())
        loss = run.loss_roles().get("train")
        last_loss = float("nan")
        if loss is not None and len(s := run.scalar(loss)):
            last_loss = float(s.values[-1])
        st = run.scalar(fmt.SYS_STEP_TIME) if fmt.SYS_STEP_TIME in names else None
        times = st.values[np.isfinite(st.values)] if st is not None else np.empty(0)
        first = None
        for name in (loss, *NONFINITE_SERIES):
            if name is not None and name in names:
                s = run.scalar(name)
                bad = np.flatnonzero((s.values > 0) if name == fmt.SYS_NONFINITE_GRADS else ~np.isfinite(s.values))
                if bad.size:
                    first = int(s.steps[bad[0]]) if first is None else min(first, int(s.steps[bad[0]]))
        status = run.status()
        out.append(RankSummary(rank, run.path, status.describe(), status.last_step, loss, last_loss,
                               float(np.median(times)) if times.size else float("nan"), first))
    return out
