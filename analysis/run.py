"""Read a trainspect run file: lazily, incrementally, on live, finished and crashed runs.

All HDF5 access of the viewer side goes through this module (the app never touches h5py).
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainspect.recorder import format as fmt
from trainspect.recorder.format import RunFileError

from .decimate import Decimated, SeriesView
from .latest_step import LatestStep
from .layout_check import check_layout, stored_rows
from .vocab import RunState, loss_roles

STALE_MIN_SECONDS = 10.0     # a heartbeat older than this (and 5 flush intervals) = writer gone
QUIET_SECONDS = 10.0         # a live run whose last value is older than this says so (a hung training loop)
SCALAR_READ_BLOCK = 4_000_000  # rows per read when loading the scalar table (bounds peak memory)
EAGER_SCALAR_ROWS = 8_000_000  # up to this many rows all metrics load at once (~200 MB of points)
MASK_SPLIT_MAX_TAGS = 32     # up to this many tags in a block, split by masks; above, by sorting
CHUNK_BYTES = 4 * 1024 * 1024  # values per block of the bounded-read iterators (*_chunks)


@dataclass(frozen=True)
class Series:
    steps: np.ndarray   # int64
    values: np.ndarray  # float64
    wall: np.ndarray    # float64 unix time

    def __len__(self):
        return len(self.steps)


@dataclass(frozen=True)
class ParamInfo:
    name: str
    module: str
    shape: tuple
    numel: int


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    type: str


@dataclass(frozen=True)
class LayerStat:
    steps: np.ndarray   # int64 [R]
    values: np.ndarray  # float32 [R, L]
    layers: list


@dataclass(frozen=True)
class Histograms:
    steps: np.ndarray   # [R]
    counts: np.ndarray  # int32 [R, P, bins]
    ranges: np.ndarray  # float32 [R, P, 2]
    layers: list


@dataclass(frozen=True)
class Snapshots:
    steps: np.ndarray   # [R]
    data: np.ndarray    # float32 [R, S, 32, 32], NaN outside each matrix's shape
    layers: list
    shapes: np.ndarray  # int [S, 2]


@dataclass(frozen=True)
class RunStatus:
    state: RunState     # live / finished / crashed / stale / recording stopped
    last_step: int      # largest step written; in a resumed run, steps a later session superseded left out
    heartbeat: float    # unix time of the writer's last flush
    age_s: float        # seconds since that flush
    error: str = ""
    quiet_s: float = math.nan   # live runs: seconds since the last value was logged (a hung loop still flushes)

    def describe(self, clock: bool = False) -> str:
        """The state in words. ``clock``: a stopped writer's last sign of life as a time of day,
        not an age (a window shows the text for minutes: '0 s ago' never counted up)."""
        # last_step -1: nothing recorded yet (a run closed or killed before its first value)
        at = f"at step {self.last_step}" if self.last_step >= 0 else "before any step was recorded"
        if self.state == RunState.FINISHED:
            return f"finished {at}"
        if self.state == RunState.CRASHED:
            return f"crashed {at}" + (f": {self.error}" if self.error else "")
        if self.state == RunState.RECORDING_STOPPED:   # the recorder's failure, not the training's
            why = f" ({self.error.removeprefix('OSError: ')})" if self.error else ""
            return f"recording stopped {at}{why}; the training went on unrecorded"
        if self.state == RunState.STALE:
            return f"writer stopped responding {at} ({_heard(self.heartbeat) if clock else _ago(self.age_s) + ' ago'})"
        text = f"live, step {self.last_step}" if self.last_step >= 0 else "live, no step recorded yet"
        if self.quiet_s >= QUIET_SECONDS:
            text += f", no new value for {_ago(self.quiet_s)}"
        return text


def _heard(when: float) -> str:
    if not math.isfinite(when) or when <= 0:
        return "never heard from"
    same_day = time.strftime("%Y-%m-%d", time.localtime(when)) == time.strftime("%Y-%m-%d")
    return "last heard at " + time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M", time.localtime(when))


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


LIVE_RETRY_PAUSE_S = 0.05
# What h5py raises on a damaged file: a checksum, a B-tree, a chunk index... (MemoryError: a
# header that claims more than the machine holds).
READ_ERRORS = (OSError, RuntimeError, ValueError, TypeError, IndexError, OverflowError, MemoryError)


def _reads_file(method):
    """Turn a read failure inside ``method`` into a RunFileError naming the file. On a live run
    (opened SWMR) a failure while the writer is changing the file may be a torn read: the call
    is tried again, for at most LIVE_RETRY_S (methods resume where a failed read stopped)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        deadline = None
        while True:
            try:
                return method(self, *args, **kwargs)
            except RunFileError:
                raise
            except READ_ERRORS as exc:
                if not (self._swmr and fmt.writer_active(self.path)):
                    raise RunFileError(fmt.h5_error_text(self.path, exc)) from None
                deadline = deadline or time.monotonic() + fmt.LIVE_RETRY_S
                if time.monotonic() > deadline:
                    raise RunFileError(f"{self.path}: could not read the live run within "
                                       f"{fmt.LIVE_RETRY_S:.0f} s ({exc})") from None
                time.sleep(LIVE_RETRY_PAUSE_S)
    return wrapper


# Run metadata keys a reader relies on, with their documented JSON types (recorder/FORMAT.md).
META_KINDS = {"name": str, "host": str, "start_time": (int, float), "step_convention": str,
              "config": dict, "versions": dict, "model": dict, "optimizer": dict, "schedule": dict,
              fmt.META_ROLES: dict, fmt.META_DISTRIBUTED: dict}
META_INNER_KINDS = (("model", "modules", list), ("model", "n_params", int), ("optimizer", "type", str),
                    ("optimizer", "hyperparameters", dict), ("optimizer", "param_groups", (int, list)))


MAX_WORLD_SIZE = 100_000


def _sound_distributed(dist: dict) -> bool:
    rank, world = dist.get("rank"), dist.get("world_size", 1)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (rank, world))
    return ints and 0 <= rank < world <= MAX_WORLD_SIZE


def _shape_of(text: str) -> tuple:
    """"256x784" -> (256, 784); anything else -> () (the shape is only shown)."""
    parts = text.split("x")
    return tuple(int(x) for x in parts) if all(x.isdigit() and len(x) < 19 for x in parts) else ()


def _finite(value, default: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else default


SCALAR_COLUMNS = (fmt.SCALAR_STEP, fmt.SCALAR_TAG, fmt.SCALAR_VALUE, fmt.SCALAR_WALL)
SUMMARY_READ_BLOCK = 1_000_000   # rows per read of scalar_summary (~20 MB, whatever the run length)


@dataclass(frozen=True)
class ScalarSummary:
    """Every metric at a glance, without holding its points (see Run.scalar_summary)."""
    names: list         # in the order first logged
    counts: np.ndarray  # int64 points per metric
    last: np.ndarray    # float64 last value logged (NaN where none)
    max_step: int       # largest step in the table (-1 = none)
    rows: int           # rows of the scalar table read
    first_nonfinite: np.ndarray | None = None   # int64 first step with a NaN/Inf value per metric (-1 = none)
    min_step: int = -1  # smallest step in the table (-1 = none): 1 where a framework counts from 1
    last_steps: np.ndarray | None = None   # int64 step of each metric's last value (-1 = none)
    odd_rows: int = 0   # rows left out: their tag names no metric or their step is outside [0, 2**53)


@dataclass
class _OddRows:
    """Scalar rows a reader leaves out, counted once each: a tag
    that names no metric (a damaged tag column: the loss curve silently lost 2/7 of its rows,
    trial 18 A13) or a step outside [0, 2**53), which the recorder never writes (2**63 printed
    "steps: 9223372036854775808" and overflowed the advisor's arithmetic, trial 18 A8)."""
    tags_upto: int = 0    # rows whose tag was looked at
    steps_upto: int = 0   # rows whose step was looked at
    no_metric: int = 0
    wild_step: int = 0

    def count(self, a: int, tag: np.ndarray, step, n_tags: int) -> None:
        """Count rows [a, a + len(tag)) not counted yet; ``step``: their steps (None: not read)."""
        if a <= self.tags_upto < a + len(tag):
            t = tag[self.tags_upto - a:]
            self.no_metric += int(np.count_nonzero((t < 0) | (t >= n_tags)))
            self.tags_upto = a + len(tag)
        if step is not None and a <= self.steps_upto < a + len(step):
            self.wild_step += int(np.count_nonzero(~sound_steps(step[self.steps_upto - a:])))
            self.steps_upto = a + len(step)

    def reset(self) -> None:
        self.tags_upto = self.steps_upto = self.no_metric = self.wild_step = 0

    def lines(self, n_tags: int) -> list:
        out = []
        if self.no_metric:
            out.append(f"{self.no_metric:,} scalar row{'s' if self.no_metric > 1 else ''} name no metric (tag index "
                       f"outside the {n_tags:,} names: damaged file?): left out")
        if self.wild_step:
            out.append(f"{self.wild_step:,} scalar row{'s' if self.wild_step > 1 else ''} carry a step outside "
                       f"0..2**53, which trainspect never writes (damaged file?): left out")
        return out


def sound_steps(step) -> np.ndarray:
    """Rows whose step the recorder could have written: 0 <= step < 2**53."""
    step = np.asarray(step)
    return (step >= 0) & (step < fmt.MAX_STEP)


_NONE_BAD = np.iinfo(np.int64).max   # _SummaryCursor.bad of a metric with no NaN/Inf (np.minimum.at)


@dataclass
class _SummaryCursor:
    rows: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # first non-finite step (_NONE_BAD: none)
    max_step: int = -1
    min_step: int = -1
    last_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    segments: np.ndarray | None = None   # the writer sessions the counts were made under
    first: np.ndarray | None = None      # resumed runs: [session, metric] smallest step (see _first_steps)
    first_rows: int = 0                  # rows ``first`` covers
    cut: np.ndarray | None = None        # the supersede cut the counts were made with

    def restart(self, n_tags: int) -> None:
        """Count again from the first row (the supersede cut moved, or a new table)."""
        self.rows, self.max_step, self.min_step = 0, -1, -1
        self.counts, self.last = np.zeros(n_tags, np.int64), np.full(n_tags, np.nan)
        self.bad, self.last_steps = np.full(n_tags, _NONE_BAD, np.int64), np.full(n_tags, -1, np.int64)

    def grow(self, n_tags: int) -> None:
        """Room for metrics named since the last call."""
        more = n_tags - len(self.counts)
        self.counts = np.concatenate([self.counts, np.zeros(more, np.int64)])
        self.last = np.concatenate([self.last, np.full(more, np.nan)])
        self.bad = np.concatenate([self.bad, np.full(more, _NONE_BAD, np.int64)])
        self.last_steps = np.concatenate([self.last_steps, np.full(more, -1, np.int64)])


def _same_table(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


VIEW_POINTS = 1 << 17   # points a metric's bounded view holds (scalar_views): ~3 MB each
VIEW_READ_BLOCK = 1 << 18   # rows per read of scalar_views (~6 MB of columns)


@dataclass
class _ViewCursor:
    rows: int = 0
    capacity: int = VIEW_POINTS
    views: dict = field(default_factory=dict)   # tag id -> Decimated
    segments: np.ndarray | None = None          # the writer sessions and the supersede cut the
    cut: np.ndarray | None = None               # views were made under (a change: read again)


_POINT_DTYPES = (np.int64, np.float64, np.float64)
_NO_POINTS = [np.empty(0, d) for d in _POINT_DTYPES]


class _Growing:
    """Append-only numpy columns with amortised growth (for one metric's points)."""

    __slots__ = ("n", "cols")

    def __init__(self):
        self.n = 0
        self.cols = _NO_POINTS   # shared and never written: the first extend replaces it

    @classmethod
    def adopt(cls, step, value, wall) -> "_Growing":
        """Points of a new metric from contiguous arrays of the right dtypes (no copy)."""
        g = cls()
        g.cols, g.n = [step, value, wall], len(step)
        return g

    def extend(self, *parts) -> None:
        k = len(parts[0])
        if self.n == 0 and k > len(self.cols[0]):
            # First block (usually the whole file): adopt the arrays, no copy. An adopted
            # slice is exactly full, so a later extend copies out before writing.
            self.cols = [np.ascontiguousarray(p, dtype=d) for p, d in zip(parts, _POINT_DTYPES)]
            self.n = k
            return
        if self.n + k > len(self.cols[0]):
            cap = max(self.n + k, 2 * len(self.cols[0]), 256)
            grown = [np.empty(cap, c.dtype) for c in self.cols]
            for g, c in zip(grown, self.cols):
                g[: self.n] = c[: self.n]
            self.cols = grown
        for c, p in zip(self.cols, parts):
            c[self.n : self.n + k] = p
        self.n += k

    def series(self) -> Series:
        s, v, w = (c[: self.n] for c in self.cols)
        return Series(s, v, w)


class Run:
    """One run file, opened for reading. Use :func:`open_run`."""

    def __init__(self, path, keep_points: bool = True):
        self.path = Path(path).expanduser()   # "~/runs/x.h5", as Recorder writes it
        # keep_points=False (the app): no metric's points stay in memory; scalar() reads one
        # metric when asked and scalar_rows() hands out new rows (memory follows what is shown).
        self._keep_points = bool(keep_points)
        # Without kept points each read is transient: smaller blocks, a smaller peak.
        self._read_block = SCALAR_READ_BLOCK if self._keep_points else SUMMARY_READ_BLOCK
        self._f = fmt.open_for_read(self.path)
        self._swmr = bool(self._f.swmr_mode)   # opened while a writer held the file
        try:
            self._read_header()
        except RunFileError:
            self._f.close()
            raise
        except READ_ERRORS as exc:  # a truncated or damaged file fails in many ways
            self._f.close()
            raise RunFileError(fmt.h5_error_text(self.path, exc)) from None
        self._scalars_loaded = False
        self._scalar_rows = 0
        self._odd = _OddRows()       # scalar rows that name no metric or carry an impossible step
        self._lazy = False           # see _load_scalars
        self._wanted: set[int] = set()
        self._tags: list[str] = []
        self._tag_ids: dict[str, int] = {}
        self._points: dict[int, _Growing] = {}
        self._summary = _SummaryCursor()
        self._group_rows: dict[str, int] = {}
        self._segments = None        # segments/table as last read (resumed runs), see _sessions_changed
        self._marks: dict = {}       # session -> {tag: points before the session} (see _latest)
        self._latest_steps: dict[str, LatestStep] = {}   # layer record group -> its counted last step
        self._views = _ViewCursor()  # see scalar_views
        # (heartbeat value, local monotonic time by which it was written, seen to change?, time of
        # the last look): liveness by this clock, so a writer whose clock runs behind (or a mirror
        # of a cluster node's run) is not "stopped responding" while its heartbeat keeps moving
        self._beat = (None, 0.0, False, 0.0)

    # ------------------------------------------------------------ header
    def _read_header(self) -> None:
        layout = check_layout(self._f, self.path)
        self._present = layout.present
        # Handles of every checked dataset: nothing is looked up by path after the check.
        self._handles: dict = layout.datasets
        self._groups = layout.groups
        self._warnings: list[str] = list(layout.warnings)
        self.meta = self._read_meta(self._h(fmt.META)[()])
        self.name = str(self.meta.get("name") or self.path.stem)
        config = self.meta.get("config")
        self.config = config if isinstance(config, dict) else {}

        def names(path):
            return fmt.decode_names(self._h(path)[()]) if path in self._present else []

        numel = self._h(fmt.PARAM_NUMEL)[()] if fmt.PARAM_NUMEL in self._present else []
        self.params = [
            ParamInfo(n, m, _shape_of(s), int(k))
            for n, m, s, k in zip(names(fmt.PARAM_NAME), names(fmt.PARAM_MODULE), names(fmt.PARAM_SHAPE), numel)
        ]
        self.modules = [ModuleInfo(n, t) for n, t in zip(names(fmt.MODULE_NAME), names(fmt.MODULE_TYPE))]
        has_snaps = fmt.SNAP_PARAM in self._present
        self._snap_param = self._h(fmt.SNAP_PARAM)[()] if has_snaps else np.empty(0, np.int32)
        self._snap_shape = self._h(fmt.SNAP_SHAPE)[()] if has_snaps else np.empty((0, 2), np.int32)
        self._file_size = max(self.file_size, 1)

    def _read_meta(self, raw) -> dict:
        try:
            meta = fmt.decode_meta(raw)
        except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._warnings.append(f"{fmt.META} is not valid JSON ({exc}): run metadata left out")
            return {}
        if not isinstance(meta, dict):
            self._warnings.append(f"{fmt.META} holds a {type(meta).__name__}, not an object: run metadata left out")
            return {}
        for key, kind in META_KINDS.items():
            value = meta.get(key)
            if value is not None and not isinstance(value, kind):
                self._warnings.append(f"{fmt.META}: {key!r} is a {type(value).__name__}, not what FORMAT.md "
                                     "documents: left out")
                del meta[key]
        for key, inner, kind in META_INNER_KINDS:
            value = (meta.get(key) or {}).get(inner)
            if value is not None and not isinstance(value, kind):
                del meta[key][inner]
        dist = meta.get(fmt.META_DISTRIBUTED)
        if dist is not None and not _sound_distributed(dist):
            # Readers open every rank's sibling file: a world size of 10^12 must not become a loop.
            self._warnings.append(f"{fmt.META}: 'distributed' is not a rank below a world size of at most "
                                 f"{MAX_WORLD_SIZE:,}: read as a single-process run")
            del meta[fmt.META_DISTRIBUTED]
        return meta

    # ------------------------------------------------------------ life cycle
    def close(self) -> None:
        if self._f is not None:
            self._handles.clear()
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def warnings(self) -> list[str]:
        """What the reader left out or doubts, one line each: the layout check's and the
        metadata's, and scalar rows that name no metric or carry an impossible step (counted
        by the reads so far: info's summary, the advisor's series)."""
        return self._warnings + self._odd.lines(len(self._tags))

    def __repr__(self):
        return f"Run({str(self.path)!r}, name={self.name!r})"

    def _file(self):
        if self._f is None:
            raise RunFileError(f"{self.path}: run is closed")
        return self._f

    def _h(self, path):
        """The dataset at ``path`` (checked at open; kept: a lookup by path costs more than a
        refresh, and live polling calls status() several times a second per run)."""
        self._file()
        return self._handles[path]

    def _ds(self, path):
        ds = self._h(path)
        ds.refresh()
        return ds

    # ------------------------------------------------------------ status
    def _state(self) -> np.ndarray:
        """state/values as float64, NaN-padded to STATE_LEN (a short or odd one reads as unknown)."""
        raw = np.asarray(self._ds(fmt.STATE)[()], dtype=np.float64).ravel()[: fmt.STATE_LEN]
        return np.concatenate([raw, np.full(fmt.STATE_LEN - len(raw), np.nan)])

    def _text(self, path: str) -> str:
        if path not in self._present:
            return ""
        ds = self._ds(path)
        return fmt.attr_str(ds[0]) if ds.shape and ds.shape[0] else ""

    @_reads_file
    def status(self) -> RunStatus:
        state = self._state()
        status = self._text(fmt.STATUS)
        error = self._text(fmt.ERROR)
        heartbeat = _finite(state[fmt.STATE_HEARTBEAT], 0.0)    # unknown: judged long gone
        last_step = _finite(state[fmt.STATE_LAST_STEP], -1.0)
        if _finite(state[fmt.STATE_SESSIONS], 1.0) > 1 and self._read_segments() is not None:
            last_step = self._counted_last_step()
        elif not -1 <= last_step < fmt.MAX_STEP:
            # a step the writer never records (a damaged state: 1e300 read "finished before any
            # step was recorded" beside "steps: 60", trial 18 A8): the largest step the rows hold
            last_step = int(self.scalar_summary().max_step)
        else:
            last_step = int(last_step)
        age = max(0.0, time.time() - heartbeat)
        value, written_by, moved, last_look = self._beat
        now = time.monotonic()
        if heartbeat != value:
            if value is not None:    # it moved after the last look (not "now": kill -9 may have come since)
                moved, written_by = True, last_look
            value = heartbeat
        if moved:
            age = min(age, now - written_by)   # by this clock: the writer's may run behind ours
        self._beat = (value, written_by, moved, now)
        flush_every = _finite(state[fmt.STATE_FLUSH_EVERY], 1.0)
        if status == fmt.STATUS_FINISHED:
            kind = RunState.FINISHED
        elif status == fmt.STATUS_CRASHED:
            stopped = fmt.recording_stopped(status, error, state[fmt.STATE_WRITER_FAILED])
            kind = RunState.RECORDING_STOPPED if stopped else RunState.CRASHED
        elif age > max(STALE_MIN_SECONDS, 5 * flush_every) or fmt.writer_died(self.path):
            kind = RunState.STALE   # the lock says at once what the heartbeat says after 10 s
        else:
            kind = RunState.LIVE
        if kind == RunState.STALE:
            # a writer stopped mid-flush (a stuck disk, the process exited during close()) wrote
            # rows whose step state/values never got: "stopped responding at step 0" over 300 steps
            last_step = max(last_step, self.scalar_summary().max_step)
        quiet = self._quiet_seconds() if kind == RunState.LIVE else math.nan
        return RunStatus(kind, last_step, heartbeat, age, error, quiet)

    def _quiet_seconds(self) -> float:
        """Seconds since the training thread logged its last value (NaN: none, or unreadable).
        The writer's heartbeat goes on while the training loop hangs (a stuck DataLoader or
        collective): a run 25 s into a hang read "live, step 49" like a healthy one."""
        paths = (fmt.SCALAR_STEP, fmt.SCALAR_TAG, fmt.SCALAR_VALUE, fmt.SCALAR_WALL)
        try:
            if not all(p in self._present for p in paths):
                return math.nan
            n = self._committed_rows(paths)
            wall = float(self._ds(fmt.SCALAR_WALL)[n - 1]) if n else math.nan
        except (OSError, KeyError, ValueError, IndexError, TypeError):   # a damaged table: no age to tell
            return math.nan
        return max(0.0, time.time() - wall) if math.isfinite(wall) else math.nan

    def settled_status(self, wait: float = 2.5) -> RunStatus:
        """``status()`` for a one-shot look (``diagnose``, ``info``): a run that reads stale while a
        writer still holds its lock is looked at again for up to ``wait`` seconds, and is live if
        its heartbeat moves (a writer whose clock runs behind this one: "stopped responding", exit
        3, then "live" in the same report)."""
        st = self.status()
        deadline = time.monotonic() + wait
        while st.state == RunState.STALE and time.monotonic() < deadline and fmt.is_locked(self.path):
            time.sleep(0.25)
            self.refresh()
            st = self.status()
        return st

    def _counted_last_step(self) -> int:
        """A resumed run's last step. state/values holds the largest step *written*, which counts
        the steps a crashed session wrote after the checkpoint the run resumed from (superseded:
        FORMAT.md, *Segments*); here only the points readers show count. Incremental, one block
        of rows at a time."""
        best = self.scalar_summary().max_step
        segments = self._read_segments()
        for group in fmt.RECORD_GROUPS:
            n = self._rows(group)
            if not n:
                continue
            steps_ds = self._h(f"{group}/{fmt.STEP_FIELD}")
            starts = fmt.session_starts(segments, group)
            best = max(best, self._latest_steps.setdefault(group, LatestStep()).update(steps_ds, n, starts))
        return best

    @property
    @_reads_file
    def start_time(self) -> float:
        return _finite(self._state()[fmt.STATE_START_TIME], math.nan)

    @property
    @_reads_file
    def dropped_records(self) -> int:
        dropped = _finite(self._state()[fmt.STATE_DROPPED], 0.0)
        return int(dropped) if 0 <= dropped < 2**62 else 0

    @property
    def file_size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    # ------------------------------------------------------------ refresh
    @_reads_file
    def refresh(self) -> int:
        """Read what the writer added since the last call; returns the number of new rows."""
        new = 0
        if self._scalars_loaded:
            new += self._load_scalars()
        for group in fmt.RECORD_GROUPS:
            if group in self._group_rows:
                before = self._group_rows[group]
                new += self._rows(group) - before
        return new

    # ------------------------------------------------------------ scalars
    def _committed_rows(self, paths) -> int:
        # Columns are appended one after another; only rows present in all of them count.
        # Rows no chunk stores do not count either (a column resized to 2^33 rows of nothing).
        return min(stored_rows(self._ds(p), self._file_size) for p in paths)

    def _refresh_tags(self) -> None:
        tags_ds = self._ds(fmt.TAG_NAMES)
        known = len(self._tags)
        if tags_ds.shape[0] > known:
            new = fmt.decode_names(tags_ds[known:])
            self._tags += new
            # A repeated name keeps its first id: insert in reverse, so the first one is written last.
            ids = dict(zip(reversed(new), range(known + len(new) - 1, known - 1, -1)))
            for name in ids.keys() & self._tag_ids.keys():
                del ids[name]
            self._tag_ids.update(ids)

    # ------------------------------------------------------------ writer sessions (resume)
    def _read_segments(self):
        if fmt.SEGMENTS not in self._present:
            return None
        table = np.asarray(self._ds(fmt.SEGMENTS)[()], dtype=np.float64)
        return table if len(table) > 1 else None

    def _sessions_changed(self) -> bool:
        """Re-read segments/table; True when the sessions' first rows changed (a session began):
        the scalars are then read again from the start."""
        table = self._read_segments()
        same = _same_table(None if table is None else table[:, 2:],
                           None if self._segments is None else self._segments[:, 2:])
        self._segments = table
        return not same

    def _mark_session(self, session: int, wanted) -> None:
        """Rows of ``session`` start here: remember how many points each metric had before it."""
        marks = self._marks.setdefault(session, {})
        for t in (self._points if wanted is None else wanted):
            g = self._points.get(t)
            marks[t] = g.n if g is not None else 0

    def _latest(self, tag: int, series: Series) -> Series:
        """``series`` without the points a later writer session superseded (fmt.latest_only)."""
        starts = fmt.session_starts(self._segments, "scalars")
        if starts is None:
            return series
        n = len(series)
        before = [min(self._marks[j].get(tag, 0), n) if j in self._marks else n for j in range(1, len(starts))]
        counts = np.diff(np.maximum.accumulate([0, *before, n]))
        keep = fmt.latest_only(np.repeat(np.arange(len(starts)), counts), series.steps)
        if keep is None:
            return series
        return Series(series.steps[keep], series.values[keep], series.wall[keep])

    @_reads_file
    def segments(self) -> list[dict]:
        """The writer sessions of a resumed run (one entry for a run written in one go):
        ``{start_time, first_step, note, config}``; ``note`` says how the session before ended,
        ``config`` is the config that session's Recorder was given (the first session's is
        ``self.config``; None where the file does not say: resumed by an older trainspect)."""
        table = self._read_segments()
        if table is None:
            return [{"start_time": self.start_time, "first_step": None, "note": "", "config": self.config}]
        notes = fmt.decode_names(self._ds(fmt.SEGMENT_NOTES)[()])
        metas = self._session_metas(len(table))
        return [{"start_time": float(row[fmt.SEG_START_TIME]),
                 "first_step": int(row[fmt.SEG_FIRST_STEP]) if np.isfinite(row[fmt.SEG_FIRST_STEP]) else None,
                 "note": note.rstrip("\0"), "config": self.config if i == 0 else meta.get("config")}
                for i, (row, note, meta) in enumerate(zip(table, notes, metas))]

    def _session_metas(self, n: int) -> list:
        """segments/meta as ``n`` dicts ({} where a session left none or the text is unsound)."""
        raw = []
        if fmt.SEGMENT_META in self._present:
            try:
                raw = fmt.decode_meta(self._ds(fmt.SEGMENT_META)[()])
            except (ValueError, UnicodeDecodeError, OSError, KeyError):
                # OSError: a session began while this reader had the file open and rewrote the
                # table past what the reader's view of the file reaches (HDF5 "addr overflow");
                # the configs are a detail, the sessions' steps must still read
                raw = []
        raw = raw if isinstance(raw, list) else []
        return [m if isinstance(m, dict) else {} for m in (raw + [None] * n)[:n]]

    @property
    @_reads_file
    def sessions(self) -> int:
        """How many writer sessions the file has had (state/values; seen by a reader opened earlier)."""
        n = _finite(self._state()[fmt.STATE_SESSIONS], 1.0)
        return int(n) if 1 <= n < 2**31 else 1

    def _load_scalars(self) -> int:
        """Read the scalar rows added since the last call; returns how many there were.

        A table of up to EAGER_SCALAR_ROWS rows is split into all its metrics in one pass
        (fast first paint). A longer one switches to lazy mode for good: only the metrics
        asked for are kept, so memory follows what is shown, not the file size.
        """
        self._file_size = max(self.file_size, self._file_size)
        if self._sessions_changed() and self._scalar_rows:
            self._points, self._scalar_rows, self._marks = {}, 0, {}
            self._odd.reset()
            if self._lazy:
                self._wanted = set()
        n = self._committed_rows(SCALAR_COLUMNS)
        self._refresh_tags()
        start = self._scalar_rows
        if not self._scalars_loaded and start == 0:   # (start > 0: a first load that failed half-way)
            self._lazy = n > EAGER_SCALAR_ROWS or not self._keep_points

        def done(row):   # per block: a read that fails half-way resumes here, nothing split twice
            self._scalar_rows = row
        if not self._lazy:
            self._scan(start, n, None, done)
        elif self._wanted:
            self._scan(start, n, self._wanted, done)
        self._scalar_rows = n
        self._scalars_loaded = True
        return n - start

    def _scan(self, start: int, stop: int, wanted, done=None) -> None:
        """Split rows [start, stop) into per-metric points; ``wanted``: tag ids to keep (None = all);
        ``done(row)`` after each block. In a resumed run the rows are split at each session's first
        row, where each metric's point count is remembered (see _latest)."""
        starts = fmt.session_starts(self._segments, "scalars")
        bounds = [] if starts is None else [int(r) for r in starts[1:]]
        pieces = sorted({start, stop, *(r for r in bounds if start < r < stop)})
        for p0, p1 in zip(pieces, pieces[1:]):
            if p0 in bounds:
                self._mark_session(bounds.index(p0) + 1, wanted)
            self._scan_piece(p0, p1, wanted, done)

    def _scan_piece(self, start: int, stop: int, wanted, done) -> None:
        step_ds, tag_ds, value_ds, wall_ds = (self._h(c) for c in SCALAR_COLUMNS)
        for a in range(start, stop, self._read_block):
            b = min(stop, a + self._read_block)
            tag = tag_ds[a:b]
            if wanted is None:
                step = step_ds[a:b]
                self._odd.count(a, tag, step, len(self._tags))
                self._split_rows(step, tag, value_ds[a:b], wall_ds[a:b])
                if done is not None:
                    done(b)
                continue
            self._odd.count(a, tag, None, len(self._tags))
            keep = np.isin(tag, np.fromiter(wanted, np.int32)) if len(wanted) > 1 else tag == next(iter(wanted))
            idx = np.flatnonzero(keep)
            if len(idx) == 0:
                if done is not None:
                    done(b)
                continue
            lo, hi = a + int(idx[0]), a + int(idx[-1]) + 1   # one slab covering the matches
            rel = idx - int(idx[0])
            self._split_rows(step_ds[lo:hi][rel], tag[idx], value_ds[lo:hi][rel], wall_ds[lo:hi][rel])
            if done is not None:
                done(b)

    def _want(self, tag: int) -> None:
        # Lazy mode: a metric asked for the first time is read from the rows seen so far;
        # later refreshes keep it up to date with the others.
        if self._lazy and tag not in self._wanted:
            try:
                self._scan(0, self._scalar_rows, {tag})
            except BaseException:
                self._points.pop(tag, None)   # all or nothing: a retry reads it again whole
                raise
            self._wanted.add(tag)

    def _split_rows(self, step, tag, value, wall) -> None:
        if len(tag) and (tag.min() < 0 or not sound_steps(step).all()):
            # a damaged file: rows without a metric, or with a step the recorder never writes, are skipped
            ok = (tag >= 0) & sound_steps(step)
            step, tag, value, wall = step[ok], tag[ok], value[ok], wall[ok]
            if not len(tag):
                return
        present = np.unique(tag) if len(tag) < 1_000_000 else np.flatnonzero(np.bincount(tag))
        if len(present) == 1:
            self._points.setdefault(int(present[0]), _Growing()).extend(step, value, wall)
        elif len(present) <= MASK_SPLIT_MAX_TAGS:
            for t in present:
                idx = np.flatnonzero(tag == t)
                self._points.setdefault(int(t), _Growing()).extend(step[idx], value[idx], wall[idx])
        else:
            # Sort the block by metric once; each metric then takes a slice (a view, no copy):
            # 50,000 metrics split in 0.3 s instead of 1.5 s of per-metric fancy indexing.
            order = np.argsort(tag, kind="stable")
            sorted_tags = tag[order]
            step, value, wall = (c[order].astype(d, copy=False) for c, d in zip((step, value, wall), _POINT_DTYPES))
            bounds = np.searchsorted(sorted_tags, present, side="left").tolist()
            ends = np.searchsorted(sorted_tags, present, side="right").tolist()
            points = self._points
            for t, a, b in zip(present.tolist(), bounds, ends):
                pts = points.get(t)
                if pts is None:
                    points[t] = _Growing.adopt(step[a:b], value[a:b], wall[a:b])
                else:
                    pts.extend(step[a:b], value[a:b], wall[a:b])

    def _ensure_scalars(self) -> None:
        if not self._scalars_loaded:
            self._load_scalars()

    @_reads_file
    def scalar_names(self) -> list[str]:
        """Every metric name, in the order first logged (``sys/...`` are the recorder's own)."""
        self._ensure_scalars()
        return list(self._tags)

    @_reads_file
    def scalar_summary(self) -> ScalarSummary:
        """Point count and last value of every metric, holding one block of rows at a time:
        memory does not grow with the run (``info`` on a 25 M-row file). Incremental: a later
        call reads only the rows added since (``tail`` polls it)."""
        self._file_size = max(self.file_size, self._file_size)
        self._refresh_tags()
        n_tags = len(self._tags)
        acc = self._summary
        if len(acc.counts) < n_tags:
            acc.grow(n_tags)
        n = self._committed_rows(SCALAR_COLUMNS)
        step_ds, tag_ds, value_ds = (self._h(c) for c in SCALAR_COLUMNS[:3])
        segments = self._read_segments()
        starts = fmt.session_starts(segments, "scalars")
        if not _same_table(segments, acc.segments) or n < acc.rows:
            acc = self._summary = _SummaryCursor(segments=segments)
            acc.restart(n_tags)
        cut = None
        if starts is not None:
            # A resumed run: rows read later can supersede rows already counted. A first pass
            # (incremental too) keeps each (session, metric)'s smallest step; the counts start
            # over only when that moves the cut of an earlier session. Memory: one value per
            # session and metric.
            cut = fmt.later_cut(self._first_steps(acc, starts, n, n_tags))
            if acc.cut is not None and not np.array_equal(acc.cut, cut):
                acc.restart(n_tags)
            acc.cut = cut
        for a in range(acc.rows, n, SUMMARY_READ_BLOCK):
            b = min(n, a + SUMMARY_READ_BLOCK)
            tag = tag_ds[a:b].astype(np.int64, copy=False)
            all_steps = step_ds[a:b]
            ok = (tag >= 0) & (tag < n_tags) & sound_steps(all_steps)   # rows of a damaged file name no metric
            self._odd.count(a, tag, all_steps, n_tags)
            if cut is not None:
                sessions = fmt.row_sessions(starts, np.arange(a, b))
                ok &= all_steps < cut[sessions, np.where(ok, tag, 0)]
            tag = tag[ok]
            if len(tag):   # every read first, then the counts: a failed read leaves them as they were
                values, steps = value_ds[a:b][ok], all_steps[ok]
                present, back = np.unique(tag[::-1], return_index=True)   # last row of each metric
                last, top = values[len(tag) - 1 - back], int(steps.max())
                nonfinite = ~np.isfinite(values)
                acc.counts += np.bincount(tag, minlength=n_tags)
                acc.last[present] = last
                acc.last_steps[present] = steps[len(tag) - 1 - back]
                acc.max_step = max(acc.max_step, top)
                low = int(steps.min())
                acc.min_step = low if acc.min_step < 0 else min(acc.min_step, low)
                if nonfinite.any():   # the earliest step of each metric's NaN/Inf rows
                    np.minimum.at(acc.bad, tag[nonfinite], steps[nonfinite].astype(np.int64))
            acc.rows = b
        return ScalarSummary(list(self._tags), acc.counts.copy(), acc.last.copy(), acc.max_step, acc.rows,
                             np.where(acc.bad == _NONE_BAD, -1, acc.bad), acc.min_step, acc.last_steps.copy(),
                             self._odd.no_metric + self._odd.wild_step)

    @_reads_file
    def metric_names(self) -> list[str]:
        """``scalar_names()`` without reading any point: only the table of names."""
        self._refresh_tags()
        return list(self._tags)

    @_reads_file
    def scalar_views(self, names, capacity: int = VIEW_POINTS) -> dict[str, SeriesView]:
        """The metrics ``names`` (those the run has) as bounded views: every point while a metric
        has up to ``capacity`` of them, beyond that a plain sample and each bucket's smallest and
        largest point (analysis/decimate.py: spikes and NaNs kept, NaN/Inf counts exact).
        What the advisor reads: memory does not grow with the run, and a later call reads only
        the rows added since (``tail`` re-runs the advisor). Superseded points are left out."""
        if fmt.session_starts(self._read_segments(), "scalars") is not None:
            summary = self.scalar_summary()   # a resumed run: the supersede cut, up to date
            n, segments, cut = summary.rows, self._summary.segments, self._summary.cut
        else:
            self._file_size = max(self.file_size, self._file_size)
            self._refresh_tags()
            n, segments, cut = self._committed_rows(SCALAR_COLUMNS), None, None
        tags = {name: self._tag_ids[name] for name in names if name in self._tag_ids}
        cur = self._views
        if (capacity != cur.capacity or not set(tags.values()) <= cur.views.keys() or n < cur.rows
                or not _same_table(segments, cur.segments) or not _same_table(cut, cur.cut)):
            cur = self._views = _ViewCursor(capacity=capacity, segments=segments, cut=cut,
                                            views={t: Decimated(capacity) for t in {*tags.values(), *cur.views}})
        self._feed_views(cur, n)
        return {name: cur.views[t].view() for name, t in tags.items()}

    def _feed_views(self, cur: _ViewCursor, n: int) -> None:
        step_ds, tag_ds, value_ds = (self._h(c) for c in SCALAR_COLUMNS[:3])
        starts = fmt.session_starts(cur.segments, "scalars")
        wanted = np.fromiter(cur.views, np.int64)
        for a in range(cur.rows, n, VIEW_READ_BLOCK):
            b = min(n, a + VIEW_READ_BLOCK)
            tag = tag_ds[a:b].astype(np.int64, copy=False)
            idx = np.flatnonzero(np.isin(tag, wanted))
            if len(idx):   # one slab covering the matches, as _scan_piece
                lo, hi = a + int(idx[0]), a + int(idx[-1]) + 1
                rel = idx - int(idx[0])
                tag, step, value = tag[idx], step_ds[lo:hi][rel], value_ds[lo:hi][rel]
                if not sound_steps(step).all():   # a step the recorder never writes (damaged file)
                    keep = sound_steps(step)
                    tag, step, value, idx = tag[keep], step[keep], value[keep], idx[keep]
                if starts is not None and cur.cut is not None:
                    keep = step < cur.cut[fmt.row_sessions(starts, a + idx), tag]
                    tag, step, value = tag[keep], step[keep], value[keep]
                for t in np.unique(tag).tolist():
                    mine = tag == t
                    cur.views[t].add(step[mine], value[mine])
            cur.rows = b

    def _first_steps(self, acc, starts, n: int, n_tags: int) -> np.ndarray:
        """[session, metric] -> the smallest step that session wrote for that metric (inf: none),
        kept in ``acc`` and extended by the rows added since the last call."""
        step_ds, tag_ds = self._h(fmt.SCALAR_STEP), self._h(fmt.SCALAR_TAG)
        first = acc.first
        if first is None or first.shape[0] != len(starts):
            first, acc.first_rows = np.full((len(starts), n_tags), np.inf), 0
        if first.shape[1] < n_tags:
            first = np.concatenate([first, np.full((len(starts), n_tags - first.shape[1]), np.inf)], axis=1)
        acc.first = first
        for a in range(acc.first_rows, n, SUMMARY_READ_BLOCK):
            b = min(n, a + SUMMARY_READ_BLOCK)
            tag = tag_ds[a:b].astype(np.int64, copy=False)
            ok = (tag >= 0) & (tag < n_tags)
            np.minimum.at(first, (fmt.row_sessions(starts, np.arange(a, b))[ok], tag[ok]), step_ds[a:b][ok])
            acc.first_rows = b
        return first

    def loss_roles(self) -> dict[str, str]:
        """{"train": name, "val": name} for the losses present (declared roles first)."""
        return loss_roles(self.scalar_names(), self.meta.get(fmt.META_ROLES), self.point_counts)

    def point_counts(self) -> dict[str, int]:
        """{metric: points logged} (one pass over the scalar table, kept and extended)."""
        summary = self.scalar_summary()
        return dict(zip(summary.names, summary.counts.tolist()))

    @_reads_file
    def scalar(self, name: str) -> Series:
        self._ensure_scalars()
        tag = self._tag_ids.get(name)
        if tag is None:
            raise KeyError(f"{self.path.name}: no metric named {name!r}") from None
        if not self._keep_points:
            return self._read_once(tag)
        self._want(tag)
        points = self._points.get(tag)
        if points is None:
            empty = np.empty(0)
            return Series(empty.astype(np.int64), empty, empty)
        return self._latest(tag, points.series())

    def _read_once(self, tag: int) -> Series:
        """One metric read from the rows seen so far and not kept (``keep_points=False``)."""
        return self._read_tags([tag])[tag]

    def _read_tags(self, tags) -> dict:
        """{tag: Series} of ``tags``, read in one pass over the rows seen so far and not kept."""
        saved = self._points, self._marks
        self._points, self._marks = {}, {}
        try:
            self._scan(0, self._scalar_rows, set(tags))
            out = {}
            for tag in tags:
                points = self._points.get(tag)
                if points is None:
                    empty = np.empty(0)
                    out[tag] = Series(empty.astype(np.int64), empty, empty)
                else:
                    out[tag] = self._latest(tag, points.series())
            return out
        finally:
            self._points, self._marks = saved

    @_reads_file
    def scalar_batches(self, names, max_points: int):
        """Yield ``(name, Series)`` for each of ``names``, as ``scalar(name)`` reads it, reading
        them in groups of at most ``max_points`` points (one pass over the table each) and
        keeping none: memory follows ``max_points``, not the run (a CSV export of a 200 M-row
        table held 6 GB, trial 18 A3). A metric of more points than that is one group."""
        self._ensure_scalars()
        counts = self.point_counts()
        group, held = [], 0
        todo = [n for n in names if n in self._tag_ids]

        def flush():
            got = self._read_tags([self._tag_ids[n] for n in group])
            for n in group:
                yield n, got.pop(self._tag_ids[n])

        for name in todo:
            k = int(counts.get(name, 0))
            if group and held + k > max_points:
                yield from flush()
                group, held = [], 0
            group.append(name)
            held += k
        if group:
            yield from flush()

    @property
    def scalar_rows_seen(self) -> int:
        """Rows of the scalar table as of the last refresh (what ``scalar_rows`` can read)."""
        return self._scalar_rows

    @_reads_file
    def scalar_rows(self, names, start: int, stop: int | None = None, latest: bool = False) -> dict:
        """The points of ``names`` in rows [start, stop) of the scalar table (``stop`` at most
        the rows seen by the last refresh), as ``{name: (row numbers, Series)}``, read one block
        at a time and not kept. ``latest``: in a resumed run, drop the rows that a later session
        superseded among the rows read (all of them when [start, stop) holds the later rows)."""
        self._ensure_scalars()
        stop = self._scalar_rows if stop is None else min(int(stop), self._scalar_rows)
        ids = {self._tag_ids[n]: n for n in names if n in self._tag_ids}
        parts: dict = {t: [] for t in ids}
        step_ds, tag_ds, value_ds, wall_ds = (self._h(c) for c in SCALAR_COLUMNS)
        wanted = np.fromiter(ids, np.int64, len(ids))
        for a in range(max(0, int(start)), stop, SUMMARY_READ_BLOCK):
            b = min(stop, a + SUMMARY_READ_BLOCK)
            tag = tag_ds[a:b]
            idx = np.flatnonzero(np.isin(tag, wanted))
            if len(idx) == 0:
                continue
            lo, hi = a + int(idx[0]), a + int(idx[-1]) + 1   # one slab covering the matches
            every = len(idx) == hi - lo          # every row of the slab is wanted: no gather
            rel = idx - int(idx[0])
            cols = tuple(c if every else c[rel] for c in (step_ds[lo:hi], value_ds[lo:hi], wall_ds[lo:hi]))
            tag = tag[idx]
            for t in ids:   # a few metrics: one comparison each beats sorting the block
                pick = tag == t
                if pick.any():
                    parts[t].append((a + idx[pick], *(c[pick] for c in cols)))
        out = {}
        for t, blocks in parts.items():
            cols = [np.concatenate([b[i] for b in blocks]) if blocks else np.empty(0) for i in range(4)]
            rows, step, value, wall = (c.astype(d, copy=False) for c, d in zip(cols, (np.int64, *_POINT_DTYPES)))
            out[ids[t]] = (rows, Series(step, value, wall))
        starts = fmt.session_starts(self._read_segments(), "scalars") if latest else None
        for name, (rows, s) in (out.items() if starts is not None else ()):
            keep = fmt.latest_only(fmt.row_sessions(starts, rows), s.steps)
            if keep is not None:
                out[name] = (rows[keep], Series(s.steps[keep], s.values[keep], s.wall[keep]))
        return out

    def to_pandas(self, names=None, *, include_sys: bool = False):
        """The metrics as a pandas DataFrame: one row per step (the index, named "step"), one
        column per metric, NaN where a metric was not logged (e.g. validation every N steps).
        A metric logged twice at one step keeps its last value. ``names`` picks the columns;
        by default every user metric, plus the recorder's ``sys/...`` ones with ``include_sys``.
        Needs pandas (not a dependency of trainspect)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Run.to_pandas() needs pandas: pip install pandas") from None
        if names is None:
            names = [n for n in self.scalar_names() if include_sys or not fmt.is_sys(n)]
        columns = {}
        for name in names:
            s = self.scalar(name)
            col = pd.Series(s.values, index=pd.Index(s.steps, name="step"), name=name)
            columns[name] = col[~col.index.duplicated(keep="last")]
        if not columns:
            return pd.DataFrame(index=pd.Index(np.empty(0, np.int64), name="step"))
        frame = pd.concat(columns, axis=1).sort_index()
        frame.index.name = "step"
        return frame

    # ------------------------------------------------------------ layer records
    def _rows(self, group: str) -> int:
        # Only groups the layout check passed: "snaps/" also holds the layout tables
        # (snaps/param, snaps/shape) in runs that have no snapshot records at all.
        if group not in self._groups:
            self._group_rows[group] = 0
            return 0
        paths = [f"{group}/{fmt.STEP_FIELD}"] + [f"{group}/{k}" for k in fmt.RECORD_GROUPS[group]]
        n = self._committed_rows(paths)
        self._group_rows[group] = n
        return n

    def _layer_names(self, group: str) -> list[str]:
        kind = fmt.GROUP_LAYERS[group]
        if kind == "params":
            return [p.name for p in self.params]
        if kind == "modules":
            return [m.name for m in self.modules]
        return [self.params[i].name for i in self._snap_param]

    def _read(self, group: str, field: str, start, stop):
        n = self._rows(group)
        sl = slice(*slice(start, stop).indices(n))
        if group not in self._groups:   # no records of this group (see _rows)
            return np.empty(0, np.int64), None
        steps = self._h(f"{group}/{fmt.STEP_FIELD}")[sl]
        data = self._h(f"{group}/{field}")[sl] if field else None
        keep = self._keep_mask(group, n)
        if keep is not None:
            live = keep[sl]
            steps, data = steps[live], (data[live] if data is not None else None)
        return steps, data

    def _keep_mask(self, group: str, n: int):
        """A resumed run: which of the first ``n`` records of ``group`` are shown (records a later
        session wrote again win); None when all are."""
        starts = fmt.session_starts(self._read_segments(), group) if fmt.SEGMENTS in self._present else None
        if starts is None:
            return None
        every = self._h(f"{group}/{fmt.STEP_FIELD}")[:n]
        return fmt.latest_only(fmt.row_sessions(starts, np.arange(n)), every)

    @_reads_file
    def shown_records(self, group: str) -> np.ndarray | None:
        """File rows of the records of ``group`` that the reads show, in order (a resumed run
        leaves out those a later session wrote again); None when every row is shown. The
        ``start``/``stop`` of the reads count file rows: record ``i`` shown is row ``[i]``."""
        if group not in self._groups:
            return None
        keep = self._keep_mask(group, self._rows(group))
        return None if keep is None else np.flatnonzero(keep)

    @_reads_file
    def record_count(self, group: str) -> int:
        return self._rows(group)

    @_reads_file
    def layer_stat_names(self) -> list[str]:
        return [name for name, (group, _) in fmt.LAYER_STATS.items() if self._rows(group) > 0]

    @_reads_file
    def layer_stat(self, name: str, start=None, stop=None) -> LayerStat:
        """A per-layer statistic as ``values[records, layers]`` with the step of each record."""
        try:
            group, field = fmt.LAYER_STATS[name]
        except KeyError:
            raise KeyError(f"unknown layer statistic {name!r}; known: {', '.join(fmt.LAYER_STATS)}") from None
        layers = self._layer_names(group)
        steps, data = self._read(group, field, start, stop)
        if data is None:
            data = np.empty((0, len(layers)), np.float32)
        return LayerStat(steps, data.astype(np.float32, copy=False), layers)

    @_reads_file
    def histograms(self, kind: str = "weight", start=None, stop=None) -> Histograms:
        if kind not in ("weight", "grad"):
            raise ValueError(f"histogram kind must be 'weight' or 'grad', not {kind!r}")
        layers = self._layer_names(fmt.HISTS)
        steps, counts = self._read(fmt.HISTS, f"{kind}_counts", start, stop)
        _, ranges = self._read(fmt.HISTS, f"{kind}_range", start, stop)
        if counts is None:
            counts = np.zeros((0, len(layers), fmt.HIST_BINS), np.int32)
            ranges = np.zeros((0, len(layers), 2), np.float32)
        return Histograms(steps, counts, ranges, layers)

    @_reads_file
    def snapshots(self, start=None, stop=None) -> Snapshots:
        layers = self._layer_names(fmt.SNAPS)
        steps, data = self._read(fmt.SNAPS, "weight", start, stop)
        if data is None:
            data = np.zeros((0, len(layers), fmt.SNAP_SIZE, fmt.SNAP_SIZE), np.float32)
        return Snapshots(steps, data.astype(np.float32), layers, np.asarray(self._snap_shape))

    # ------------------------------------------------------------ summary
    @property
    @_reads_file
    def max_step(self) -> int:
        """The largest step of any point this reader shows (-1: none). In a resumed run the steps
        a later session wrote again do not count (status().last_step leaves them out too).
        Memory does not grow with the run (see scalar_summary)."""
        return max(self.status().last_step, self.scalar_summary().max_step)

    @_reads_file
    def instruments(self) -> dict[str, int]:
        """Record count of every layer record group that has data (grads, weights, ...)."""
        return {g: n for g in fmt.RECORD_GROUPS if (n := self._rows(g)) > 0}

    @_reads_file
    def steps_going_back(self, group: str) -> tuple[int, int] | None:
        """(step, the step before it) where the records of ``group`` first go back to an earlier
        step; None when they never do (the recorder writes them in step order: a damaged file)."""
        if self._rows(group) < 2:
            return None
        steps = self._read(group, None, None, None)[0]
        back = np.flatnonzero(np.diff(steps) < 0)
        return (int(steps[back[0] + 1]), int(steps[back[0]])) if back.size else None

    # ------------------------------------------------------------ bounded reads
    # Whole-table reads (layer_stat(), histograms(), snapshots() without bounds) hold a run's
    # records at once: 500 parameters x 40 k steps is 80 MB per field, histograms far more.
    # These iterators hold one block of about CHUNK_BYTES; every reader of whole tables (the
    # advisor, the app, the report, the CSV export) goes through them.
    def _blocks(self, group: str, row_bytes: int, start, stop, rows):
        """(first row, last row) of each block over the records [start, stop) present now."""
        n = self.record_count(group)
        a, b, _ = slice(start, stop).indices(n)
        if rows is None:
            rows = max(1, CHUNK_BYTES // max(1, row_bytes))
        for lo in range(a, b, max(1, int(rows))):
            yield lo, min(b, lo + int(rows))

    def layer_stat_chunks(self, name: str, start=None, stop=None, rows: int | None = None):
        """``layer_stat(name, start, stop)`` as LayerStat blocks of at most ``rows`` records
        (default: about CHUNK_BYTES of values)."""
        group = fmt.LAYER_STATS[name][0] if name in fmt.LAYER_STATS else None
        if group is None:
            self.layer_stat(name, 0, 0)     # raises the KeyError naming the known statistics
        row_bytes = 4 * max(1, len(self._layer_names(group)))
        for a, b in self._blocks(group, row_bytes, start, stop, rows):
            yield self.layer_stat(name, a, b)

    def histogram_chunks(self, kind: str = "weight", start=None, stop=None, rows: int | None = None):
        """``histograms(kind, start, stop)`` as Histograms blocks of at most ``rows`` records."""
        row_bytes = max(1, len(self._layer_names(fmt.HISTS))) * (4 * fmt.HIST_BINS + 8)
        for a, b in self._blocks(fmt.HISTS, row_bytes, start, stop, rows):
            yield self.histograms(kind, a, b)

    def snapshot_chunks(self, start=None, stop=None, rows: int | None = None):
        """``snapshots(start, stop)`` as Snapshots blocks of at most ``rows`` records."""
        row_bytes = max(1, len(self._layer_names(fmt.SNAPS))) * 4 * fmt.SNAP_SIZE * fmt.SNAP_SIZE
        for a, b in self._blocks(fmt.SNAPS, row_bytes, start, stop, rows):
            yield self.snapshots(a, b)

    def layer_columns(self, name: str, columns, start=None, stop=None) -> LayerStat:
        """Only the chosen layer columns of a statistic (``values[records, len(columns)]``),
        gathered block by block: plotting a few layers of a long run reads it in bounded memory."""
        columns = list(columns)
        steps, parts, layers = [], [], None
        for block in self.layer_stat_chunks(name, start, stop):
            layers = layers or block.layers
            steps.append(block.steps)
            parts.append(block.values[:, columns])
        if layers is None:
            layers = self.layer_stat(name, 0, 0).layers
        return LayerStat(np.concatenate(steps) if steps else np.empty(0, np.int64),
                         np.concatenate(parts) if parts else np.empty((0, len(columns)), np.float32),
                         [layers[c] for c in columns])


def open_run(path, keep_points: bool = True) -> Run:
    """Open a run file for reading (live, finished or crashed). Raises RunFileError.

    ``keep_points=False``: hold no metric's points (see ``Run.scalar_rows``)."""
    return Run(path, keep_points=keep_points)
