"""What the app shows of a distributed run (Qt-free): its ranks opened once per run entry,
a rank x step matrix pooled to screen columns, and the min-max band across ranks.

The rank files are opened beside the entry's own run (rank 0's, usually) the first time a
panel asks, refreshed when that run is, and closed with it. Every read of them (``ranked``,
``refresh`` and the matrices) runs on a background reader holding the entry's file lock
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

from trainspect.analysis.ranks import RankedRun, RankMatrix, open_ranks, rank_of

_CACHE_ATTR = "_rank_files"
_UNKNOWN = object()


class _RankFiles:
    """The sibling files of one opened run (an entry reopened after a restart gets new ones)."""

    __slots__ = ("run", "ranked", "closed", "borrowed")

    def __init__(self, run):
        self.run = run              # the entry's run these siblings go with
        self.ranked = _UNKNOWN      # RankedRun, None (a single-process run) or not looked at yet
        self.closed = False
        self.borrowed = {}          # file key -> the open row's run used for that rank (not ours)


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
    base = rank_of(entry.key)[0]
    return {e.key: (e.run if e.ready else None) for e in entries
            if e is not entry and e.key != entry.key and rank_of(e.key)[0] == base and (e.ready or e.state == "loading")}   # RunEntry.state


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
            got = open_ranks(entry.run, reuse=reuser(siblings))
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


def pool_columns(m: RankMatrix, max_cols: int = 2000):
    """(first step, last step, values[R, C]) with at most ``max_cols`` columns, each the
    mean over its steps of every rank (NaN where a rank has nothing in a column)."""
    n = len(m.steps)
    if n <= max_cols:
        return m.steps, m.steps, m.values
    edges = np.linspace(0, n, max_cols + 1).astype(np.int64)
    finite = np.isfinite(m.values)
    sums = np.add.reduceat(np.where(finite, m.values, 0.0), edges[:-1], axis=1)
    counts = np.add.reduceat(finite, edges[:-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return m.steps[edges[:-1]], m.steps[edges[1:] - 1], pooled


def spread(m: RankMatrix, max_points: int = 4000):
    """(steps, low, high): the min and max across ranks at each step where >= 2 ranks have a
    value, pooled to at most ``max_points`` (min of the minima, max of the maxima per pool)."""
    finite = np.isfinite(m.values)
    keep = finite.sum(axis=0) >= 2
    steps, v = m.steps[keep], m.values[:, keep]
    if not len(steps):
        return steps, np.empty(0), np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a column of +-inf/NaN mixes
        lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    if len(steps) > max_points:
        edges = np.linspace(0, len(steps), max_points + 1).astype(np.int64)[:-1]
        steps = steps[edges]
        lo, hi = np.minimum.reduceat(lo, edges), np.maximum.reduceat(hi, edges)
    return steps, lo, hi


def rank_contrast(m: RankMatrix) -> float:
    """How much the ranks differ: the median over steps of (largest rank / median rank).
    Under DDP the step times match (the all-reduce waits for the slowest) while the data
    wait shows the straggler, so this picks the timing series worth showing first."""
    v = m.values[:, np.all(np.isfinite(m.values), axis=0)]
    if v.shape[0] < 2 or v.shape[1] == 0:
        return 0.0
    mid = np.median(v, axis=0)
    ok = mid > 0
    return float(np.median(v.max(axis=0)[ok] / mid[ok])) if ok.any() else 0.0
