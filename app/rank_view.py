"""What the app shows of a distributed run (Qt-free): its ranks opened once per run entry,
the Ranks tab's rank x step heatmaps (one bounded :class:`~.step_columns.StepColumns` per rank
and metric) and the min-max band across ranks (one bounded :class:`~.lod.Envelope` per rank and
metric), both fed only the rows each rank's run added since the last read: the sibling files
are opened with ``keep_points=False`` and hold no points, and a refresh of a long live run
reads what it added, not the whole file again.

The rank files are opened beside the entry's own run (rank 0's, usually) the first time a
panel asks, refreshed when that run is, and closed with it. Every read of them (``ranked``,
``refresh`` and the heatmaps) runs on a background reader holding the entry's file lock
(``run_io.locked_read``): that lock also serialises the sibling files, which have no lock of
their own. The GUI thread only asks :func:`known` (no file access).

A rank file the user also opened as its own row (``exp1.rank1.h5`` opened alone, then
``exp1.h5``) is not opened a second time: HDF5 shares one open file between two handles of it
in a process, and a refresh through one corrupts the other's view ("can't insert duplicate
key", a stale layout). The row's :class:`~.gui.run_io.GuardedRun` is borrowed instead
(:func:`open_siblings`); a read then holds both files' locks, taken in path order
(``run_io.locked_read``), and the row's own refresh keeps it current.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from trainspect.analysis.ranks import RankedRun, open_ranks, rank_of

from .lod import Envelope
from .step_columns import StepColumns, pool

_CACHE_ATTR = "_rank_files"
_UNKNOWN = object()


class _RankFiles:
    """The sibling files of one opened run (an entry reopened after a restart gets new ones)."""

    __slots__ = ("run", "ranked", "closed", "borrowed", "feeds", "columns")

    def __init__(self, run):
        self.run = run              # the entry's run these siblings go with
        self.ranked = _UNKNOWN      # RankedRun, None (a single-process run) or not looked at yet
        self.closed = False
        self.borrowed = {}          # file key -> the open row's run used for that rank (not ours)
        self.feeds = {}             # (rank, metric) -> _Feed: what the bands draw, bounded
        self.columns = {}           # (rank, metric) -> _ColumnFeed: what the heatmaps draw, bounded


def _files(entry) -> _RankFiles:
    got = getattr(entry, _CACHE_ATTR, None)
    if got is None or got.run is not entry.run:
        got = _RankFiles(entry.run)
        setattr(entry, _CACHE_ATTR, got)
    return got


def open_siblings(entry, entries) -> dict:
    """GUI thread, no file access: {file key: run} of the rows among ``entries`` (the model's
    rows) that are other ranks of ``entry``'s launch path (a rank file opened as its own row);
    None for a row still opening (its file is not opened here meanwhile). Pass it to
    :func:`ranked`, and hold these runs' locks too while reading (``run_io.locked_read``)."""
    if entry.run is None:
        return {}
    return {e.key: (e.run if e.ready else None) for e in entries
            if reads_through(entry, e) and (e.ready or e.state == "loading")}   # RunEntry.state


def reads_through(entry, row) -> bool:
    """GUI thread, no file access: ``row`` is another rank of ``entry``'s run open as its own
    row, which ``entry``'s rank reads borrow (:func:`open_siblings`) and only that row
    refreshes: its new rows are new rows of ``entry``'s ranks too (a rank that finishes after
    the entry's own file stopped growing)."""
    return (row is not entry and entry is not None and row.key != entry.key
            and rank_of(row.key)[0] == rank_of(entry.key)[0])


_claimed: set = set()   # keys of files being opened as rows: no read opens them as a rank meanwhile


def let_go(key: str, entries) -> None:
    """Close the rank files of ``entries`` that are the file ``key``, about to be opened as a row
    of its own (one HDF5 handle per file); until :func:`settled`, no read opens it as a rank
    (a read asked for before the row existed included). Background readers only."""
    _claimed.add(key)
    for e in entries:
        files = getattr(e, _CACHE_ATTR, None)
        if files is None or not isinstance(files.ranked, RankedRun):
            continue
        with files.run.locked():
            ranked = files.ranked
            if isinstance(ranked, RankedRun) and any(str(Path(r.path).resolve()) == key for r in _owned(files)):
                ranked.close()
                files.ranked = _UNKNOWN


def settled(key: str) -> None:
    """The row of ``key`` is open (or failed, or gone): reads see it as a row again."""
    _claimed.discard(key)


def _owned(files) -> list:
    """The sibling runs ``files`` opened itself (not the entry's run, not a borrowed row's)."""
    borrowed = [id(r) for r in files.borrowed.values()]
    return [r for r in files.ranked.runs.values() if r is not files.run and id(r) not in borrowed]


def ranked(entry, siblings=None):
    """The RankedRun of a run entry (None for a single-process run), opened on first use.
    ``siblings`` (:func:`open_siblings`): ranks open as rows, used instead of opening their file
    again; when they change (a row opened or closed), the ranks are opened anew.
    Background readers only, holding the entry's file lock and the siblings'."""
    if entry.run is None or getattr(entry.run, "closed", False):
        return None
    files = _files(entry)
    if files.closed:
        return None
    siblings = {k: r for k, r in (siblings or {}).items() if r is None or not r.closed}
    if isinstance(files.ranked, RankedRun) and not _same_runs(files.borrowed, siblings):
        files.ranked.close()                 # ours only: the borrowed runs are their rows'
        files.ranked = _UNKNOWN
    if files.ranked is _UNKNOWN:
        try:
            got = open_ranks(entry.run, reuse=reuser(siblings), keep_points=False)
        except Exception:  # noqa: BLE001 - a sibling that cannot be read leaves the run single
            got = None
        if got is not None and len(got.runs) < 2:
            got.close()
            got = None
        files.ranked, files.borrowed = got, siblings
    return files.ranked


def reuser(siblings: dict):
    """``reuse`` for ``open_ranks`` from :func:`open_siblings`: a sibling open as a row is read
    through the row's run; one still opening is left alone (False); others are opened."""
    return lambda path: _reused(siblings, path)


def _reused(siblings: dict, path):
    key = str(Path(path).resolve())
    if key in _claimed and siblings.get(key) is None:
        return False                          # being opened as a row right now
    if key not in siblings:
        return None
    run = siblings[key]
    if run is None:
        return False                          # being opened as a row: not opened here meanwhile
    return None if run.closed else run        # a row closed since: its file is free to open


def shared_reuser(entry, siblings: dict, hold):
    """``reuse`` for an ``open_ranks`` outside the panels' reads (the advisor, on its own thread):
    a rank open as a row is read through the row's run (as :func:`reuser`), every other rank
    through the run the entry's rank files hold (opened here if not yet, under ``hold(work)``:
    ``work()`` holding the entry's and ``siblings``' locks), each use of it holding the entry's
    lock. One HDF5 handle per file in the process: each read through a second handle refreshes
    its datasets, which left the first handle's view stale (the Ranks tab drew rank 1 from wrong
    rows while the advisor read rank 1 through a handle of its own)."""
    def reuse(path):
        got = _reused(siblings, path)
        if got is not None:
            return got
        shared = hold(lambda: ranked(entry, siblings))
        key = str(Path(path).resolve())
        for run in (shared.runs.values() if isinstance(shared, RankedRun) else ()):
            if str(Path(run.path).resolve()) == key:
                return _Locked(run, entry.run)
        return None                           # not readable here: the caller opens it
    return reuse


class _Locked:
    """A sibling rank's run used outside the panels' reads: every attribute read and call holds
    ``guard``'s lock (the entry's run, whose lock serialises its rank files)."""

    __slots__ = ("_run", "_guard")

    def __init__(self, run, guard):
        self._run, self._guard = run, guard

    def __getattr__(self, name):
        with self._guard.locked():
            value = getattr(self._run, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with self._guard.locked():
                return value(*args, **kwargs)
        return call


def _same_runs(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def known(entry):
    """GUI thread, no file access: True for a distributed run, False for a single-process
    one, None when its rank files have not been looked at yet."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is None or files.run is not entry.run or files.ranked is _UNKNOWN or files.closed:
        return None
    return files.ranked is not None


def refresh(entry) -> None:
    """Read what the sibling ranks added (the entry's own run is refreshed by the model).
    Background readers only, holding the entry's file lock."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is not None and files.run is entry.run and isinstance(files.ranked, RankedRun):
        for run in _owned(files):            # a row refreshes its own run
            run.refresh()


def release(entry, io) -> None:
    """Forget the entry's rank files; they are closed on ``io`` (a ``BackgroundReads``) once no
    read holds them. Looked at again on the next ``ranked`` (unless the run is closed)."""
    files = getattr(entry, _CACHE_ATTR, None)
    if files is None:
        return
    delattr(entry, _CACHE_ATTR)

    def close():
        with files.run.locked():
            got, files.ranked, files.closed = files.ranked, None, True
            if isinstance(got, RankedRun):
                got.close()

    io.submit(close)


BAND_CAPACITY = 2048   # buckets per rank and metric: a band is a few thousand points wide at most


class _Feed:
    """One rank's metric as an :class:`~.lod.Envelope`, fed the rows its run added since."""

    __slots__ = ("run", "env", "next_row")

    def __init__(self, run):
        self.run, self.env, self.next_row = run, Envelope(capacity=BAND_CAPACITY), 0

    def catch_up(self, metric: str) -> Envelope:
        seen = self.run.scalar_rows_seen
        if seen < self.next_row:                       # the run was read anew under us
            self.env, self.next_row = Envelope(capacity=BAND_CAPACITY), 0
        if seen > self.next_row:
            got = self.run.scalar_rows([metric], self.next_row, seen, latest=True).get(metric)
            if got is not None and self.next_row and supersedes(self.run, got[1].steps, self.env.span["s"][1]):
                self.env = Envelope(capacity=BAND_CAPACITY)
                got = self.run.scalar_rows([metric], 0, seen, latest=True).get(metric)
            if got is not None:
                rows, s = got
                self.env.extend(rows, s.steps, s.wall, s.values)
            self.next_row = seen
        return self.env


def supersedes(run, steps, held_top: float) -> bool:
    """New points of a resumed run (several writer sessions) at a step <= the largest step a
    feed already holds: a later session wrote those steps again and its points supersede the
    held ones (FORMAT.md, *Segments*), which only a read of every row at once leaves out, so the
    feed starts over. (Within one session steps only go up: a feed never starts over there.)"""
    return len(steps) > 0 and float(np.min(steps)) <= held_top and len(run.segments()) > 1


def envelopes(entry, ranked: RankedRun, metric: str) -> dict:
    """{rank: Envelope} of ``metric`` for the ranks that logged it, brought up to date with the
    rows each rank's run has seen (read once, never held: the runs keep no points). Kept with
    the entry's rank files; a rank whose run was opened anew starts over. Background readers
    only, holding the locks of :func:`ranked`."""
    files = _files(entry)
    out = {}
    for rank, run in ranked.runs.items():
        if metric not in run.scalar_names():
            continue
        feed = files.feeds.get((rank, metric))
        if feed is None or feed.run is not run:
            feed = files.feeds[(rank, metric)] = _Feed(run)
        out[rank] = feed.catch_up(metric)
    return out


def held(entry) -> int:
    """Numbers the bands of ``entry`` hold (what the tests bound)."""
    files = getattr(entry, _CACHE_ATTR, None)
    return sum(f.env.held() for f in files.feeds.values()) if files is not None else 0


def band(envs: dict, max_points: int = 4000):
    """(steps, low, high) of the band from each rank's envelope: the min and max across
    ranks of the points the buckets hold (first, minimum, maximum, last), on the union of the
    steps those points were logged at (pooled to at most ``max_points``), where >= 2 ranks have
    a value. A one-step spike on one rank is a bucket's extreme at every size, so it stays in
    the band; zoomed in, the band is at the envelopes' resolution (no file is read again)."""
    parts = []
    for env in envs.values():
        c = {k: v[: env.m] for k, v in env.cols.items()}
        ends = ("f", "lo", "hi", "l")        # points held per bucket: first, extremes, last
        s, y = (np.concatenate([c[k + e] for e in ends]) for k in ("s", "y"))
        ok = ~np.isnan(y)
        parts.append((s[ok], y[ok]))
    grid = np.unique(np.concatenate([s for s, _ in parts])) if parts else np.empty(0)
    n = len(grid)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    group = np.arange(n)
    if n > max_points:
        group = np.searchsorted(np.linspace(0, n, max_points + 1).astype(np.int64)[1:-1], group, side="right")
    n_groups = int(group[-1]) + 1
    lo, hi = np.full((len(parts), n_groups), np.nan), np.full((len(parts), n_groups), np.nan)
    for i, (s, y) in enumerate(parts):
        if not len(s):
            continue
        g = group[np.searchsorted(grid, s)]
        has = np.zeros(n_groups, bool)
        has[g] = True
        r_lo, r_hi = np.full(n_groups, np.inf), np.full(n_groups, -np.inf)
        np.minimum.at(r_lo, g, y)
        np.maximum.at(r_hi, g, y)
        # a pool inside the rank's steps that none of its held points fell in: the rank's line
        # crosses it, so it counts there with the values of its neighbouring pools' points
        known = np.flatnonzero(has)
        inside = np.arange(known[0], known[-1] + 1)
        with np.errstate(invalid="ignore"):
            lo[i, inside] = np.interp(inside, known, r_lo[known])
            hi[i, inside] = np.interp(inside, known, r_hi[known])
        lo[i, known], hi[i, known] = r_lo[known], r_hi[known]   # exact where held (+-inf kept)
    ranks_with = (~np.isnan(lo)).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a pool no rank reaches
        lo, hi = np.nanmin(lo, axis=0), np.nanmax(hi, axis=0)
    keep = ranks_with >= 2
    first = np.searchsorted(group, np.arange(n_groups))      # each pool's first step
    return grid[first][keep].astype(np.int64), lo[keep], hi[keep]


COLUMN_CAPACITY = StepColumns.CAPACITY   # step buckets per rank and metric: >= the widest heatmap's columns / 2
FEED_ROWS = 1 << 18                      # rows per read (~10 MB): a first read of a long run holds one block at a time


class _ColumnFeed:
    """One rank's metric as :class:`~.step_columns.StepColumns`, fed the rows its run added since."""

    __slots__ = ("run", "cols", "next_row")

    def __init__(self, run):
        self.run, self.cols, self.next_row = run, StepColumns(COLUMN_CAPACITY), 0


def columns(entry, ranked: RankedRun, names) -> dict:
    """{name: {rank: StepColumns}} of ``names`` (the ranks that logged each), brought up to
    date with the rows each rank's run has seen: each rank's new rows are read once for the
    ``names`` fed up to the same row, FEED_ROWS at a time, and not kept. Kept with the entry's
    rank files; a rank whose run was opened anew starts over, and so does a metric a resumed
    session wrote again (:func:`supersedes`). Background readers only, holding the locks of
    :func:`ranked`."""
    files = _files(entry)
    out = {n: {} for n in names}
    for rank, run in ranked.runs.items():
        have = set(run.scalar_names())
        seen = run.scalar_rows_seen
        feeds = {}
        for name in (n for n in names if n in have):
            feed = files.columns.get((rank, name))
            if feed is None or feed.run is not run or feed.next_row > seen:
                feed = files.columns[(rank, name)] = _ColumnFeed(run)
            feeds[name] = out[name][rank] = feed
        anew = []
        for start in sorted({f.next_row for f in feeds.values()}):
            group = [n for n, f in feeds.items() if f.next_row == start]
            for a in range(start, seen, FEED_ROWS):
                b = min(seen, a + FEED_ROWS)
                got = run.scalar_rows(group, a, b, latest=True)
                for name in list(group):
                    s = got[name][1] if name in got else None
                    if s is not None and supersedes(run, s.steps, feeds[name].cols.top):
                        anew.append(name)
                        group.remove(name)
                    elif s is not None:
                        feeds[name].cols.add(s.steps, s.values)
                    feeds[name].next_row = b
        if anew:                      # a resumed run: every row at once, superseded points left out
            got = run.scalar_rows(anew, 0, seen, latest=True)
            for name in anew:
                feed = files.columns[(rank, name)] = out[name][rank] = _ColumnFeed(run)
                if name in got:
                    feed.cols.add(got[name][1].steps, got[name][1].values)
                feed.next_row = seen
    return {name: {rank: f.cols for rank, f in per.items()} for name, per in out.items()}


def column_held(entry) -> int:
    """Numbers the heatmaps of ``entry`` hold (what the tests bound)."""
    files = getattr(entry, _CACHE_ATTR, None)
    return sum(f.cols.held() for f in files.columns.values()) if files is not None else 0


class Heat:
    """One metric's heatmap, pooled: ``first``/``last`` step of each column, and per rank (row)
    and column the ``mean`` of the rank's values over the column's steps, their ``top`` (max)
    and the step of that max (see :func:`~.step_columns.pool`)."""

    __slots__ = ("ranks", "first", "last", "mean", "top", "top_step")

    def __init__(self, ranks, first, last, mean, top, top_step):
        self.ranks, self.first, self.last = list(ranks), first, last
        self.mean, self.top, self.top_step = mean, top, top_step


def heats(entry, ranked: RankedRun, names, max_cols: int) -> dict:
    """{name: Heat} of ``names`` with at most ``max_cols`` columns (fed by :func:`columns`)."""
    return {name: Heat(per_rank, *pool(per_rank, max_cols))
            for name, per_rank in columns(entry, ranked, names).items()}


def rank_contrast(heat: Heat) -> float:
    """How much the ranks differ: the median over columns of (largest rank / median rank) of the
    columns' means (over steps, where a column is one step). Under DDP the step times match
    (the all-reduce waits for the slowest) while the data wait shows the straggler, so this picks
    the timing series worth showing first."""
    v = heat.mean[:, np.all(np.isfinite(heat.mean), axis=0)]
    if v.shape[0] < 2 or v.shape[1] == 0:
        return 0.0
    mid = np.median(v, axis=0)
    ok = mid > 0
    return float(np.median(v.max(axis=0)[ok] / mid[ok])) if ok.any() else 0.0
