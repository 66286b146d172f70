"""Low-level writer of a run file. One thread owns an instance; no torch here.

Life cycle: ``RunFileWriter(path)`` creates the file (so a bad path fails at once),
``start(meta, layout)`` creates every object and switches to SWMR, then only
``add_tags`` / ``append_*`` / ``flush`` / ``close`` — the layout is frozen from then on.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5s

from . import format as fmt
from . import unlinked
from .warning import RecorderWarning

LINK_CHECK_S = 1.0   # how often the writer checks that its file still has its name
# HDF5's chunk cache, per dataset: room for the chunk being appended to (chunks are sized to
# ~256 KB, fmt.chunk_rows) and no more. At HDF5's 1 MB default every growing dataset kept up
# to 1 MB of chunks already written: the training process grew ~60 MB over 400 k steps of a
# small watched MLP (benchmarks/bench_writer_memory.py), and more with more datasets.
CHUNK_CACHE_BYTES = 320 * 1024


@dataclass
class LayerLayout:
    """The per-layer tables, fixed when watch() has seen the model."""

    params: list = field(default_factory=list)       # [(name, module, shape tuple, numel)]
    modules: list = field(default_factory=list)      # [(name, type name)]
    snap_params: list = field(default_factory=list)  # indices into params of snapshot slots
    snap_shapes: list = field(default_factory=list)  # [(rows, cols)] used in each 32x32 slot


def _fixed(value: str, length: int) -> np.bytes_:
    return np.bytes_(value.encode("utf-8")[:length].ljust(length, b"\0"))


class RunFileWriter:
    def __init__(self, path, resume: bool = False, session_meta: dict | None = None):
        self.path = Path(path)
        self._session_meta = session_meta   # a resumed session's config (segments/meta)
        self.link_problems: set = set()   # unlinked.DELETED / MOVED, once seen (warned once each)
        self._next_link_check = 0.0
        self.recovered_to = None    # where a deleted run file was saved at close
        self.resumed = False        # continuing a run file written before (see _resume())
        self.needs_first_step = False
        self.session_note = ""      # how the previous session ended (resume)
        self.tag_len = fmt.TAG_LEN  # bytes a metric name may take in this file (see _reopen)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists() and self._resume():
            return
        # Built under a temporary name and renamed into place: a reader never finds a half-made
        # file at the path, and one still reading a run this file replaces (overwrite=True)
        # keeps reading that run's inode instead of meeting a file truncated under it.
        building = self.path.with_name(fmt.sidecar_name(self.path.name, f".{os.getpid()}.new"))
        try:
            self.f = h5py.File(building, "w", libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)
        except BaseException:   # a full disk: HDF5 made the file, then failed to write its header
            building.unlink(missing_ok=True)
            raise
        try:
            self._create_header()
            self.f.flush()
            os.replace(building, self.path)
        except BaseException:
            self.f.close()
            building.unlink(missing_ok=True)
            raise

    def _create_header(self) -> None:
        a = self.f.attrs
        a[fmt.ATTR_MAGIC] = np.bytes_(fmt.FORMAT_MAGIC.encode())
        a[fmt.ATTR_SCHEMA] = np.int64(fmt.SCHEMA_VERSION)
        self.state = np.full(fmt.STATE_LEN, np.nan)
        self.state[[fmt.STATE_HEARTBEAT, fmt.STATE_START_TIME]] = time.time()
        self.state[[fmt.STATE_LAST_STEP, fmt.STATE_FLUSH_EVERY, fmt.STATE_DROPPED]] = (-1, 1.0, 0)
        self._state_ds = self.f.create_dataset(fmt.STATE, data=self.state, chunks=(fmt.STATE_LEN,))
        self._status_ds = self._fixed_ds(fmt.STATUS, fmt.STATUS_RUNNING, fmt.STATUS_LEN)
        self._error_ds = self._fixed_ds(fmt.ERROR, "", fmt.ERROR_LEN)
        self.started = False
        self.closed = False
        self.n_tags = 0
        self.layout = LayerLayout()
        self._columns: dict = {}

    # ------------------------------------------------------------ resume
    def _resume(self) -> bool:
        """Reopen the run for a new writer session (segment); False if it never got past its
        header (nothing to continue: it is recreated). Raises OSError naming the problem."""
        from .superblock import SuperblockError, carries_run_mark, clear_write_flags

        if not carries_run_mark(self.path):   # before any byte changes: another program's file may be open
            raise OSError("HDF5 file but not a trainspect run (no trainspect_format mark in its header); nothing was "
                          "changed")
        try:
            clear_write_flags(self.path)
            f = h5py.File(self.path, "r+", libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise OSError(str(exc) if isinstance(exc, SuperblockError) else f"HDF5 cannot open it ({exc})") from exc
        try:
            try:   # a newer trainspect's run: this version would append rows its readers misread
                fmt.check_header(f, self.path)
            except fmt.RunFileError as exc:
                raise OSError(str(exc).removeprefix(f"{self.path}: ")) from None
            if fmt.META not in f:
                f.close()
                return False
            self.f = f
            try:
                self._reopen()
            except (OSError, KeyboardInterrupt):
                raise
            except Exception as exc:   # a table missing or of the wrong shape: say so, not IndexError
                raise OSError(f"damaged run file, it cannot be continued ({type(exc).__name__}: {str(exc)[:200]}); "
                              "`trainspect info` shows what is readable; record to a new path") from exc
        except BaseException:
            f.close()
            raise
        return True

    def _reopen(self) -> None:
        f = self.f
        self._state_ds, self._status_ds, self._error_ds = f[fmt.STATE], f[fmt.STATUS], f[fmt.ERROR]
        self.state = self._state_ds[()].astype(np.float64)
        status, error = fmt.attr_str(self._status_ds[0]), fmt.attr_str(self._error_ds[0])
        last = self.state[fmt.STATE_LAST_STEP]
        at = f" at step {int(last)}" if np.isfinite(last) and last >= 0 else ""
        if fmt.recording_stopped(status, error, self.state[fmt.STATE_WRITER_FAILED]):
            status = "recording stopped"   # the writer failed, the training went on (analysis.run says the same)
        self.session_note = (f"{status}{at}" + (f": {error}" if error else "")
                             if status != fmt.STATUS_RUNNING else f"writer stopped{at} (killed or hung)")
        self.tag_names = fmt.decode_names(f[fmt.TAG_NAMES][()])
        self.tag_len = f[fmt.TAG_NAMES].dtype.itemsize   # 64 in files written before TAG_LEN grew
        self.n_tags = len(self.tag_names)
        self.layout = LayerLayout(
            params=[(n, m, s, int(k)) for n, m, s, k in zip(
                fmt.decode_names(f[fmt.PARAM_NAME][()]), fmt.decode_names(f[fmt.PARAM_MODULE][()]),
                fmt.decode_names(f[fmt.PARAM_SHAPE][()]), f[fmt.PARAM_NUMEL][()])],
            modules=list(zip(fmt.decode_names(f[fmt.MODULE_NAME][()]), fmt.decode_names(f[fmt.MODULE_TYPE][()]))),
            snap_params=[int(i) for i in f[fmt.SNAP_PARAM][()]],
            snap_shapes=[tuple(int(x) for x in r) for r in f[fmt.SNAP_SHAPE][()]])
        # Rows of a flush the dead writer did not finish: cut every table to its complete rows,
        # or the new session's rows would pair with the old one's leftovers.
        rows = {"scalars": self._cut([fmt.SCALAR_STEP, fmt.SCALAR_TAG, fmt.SCALAR_VALUE, fmt.SCALAR_WALL])}
        for group, fields in fmt.RECORD_GROUPS.items():
            step = f"{group}/{fmt.STEP_FIELD}"
            rows[group] = self._cut([step] + [f"{group}/{k}" for k in fields]) if step in f else 0
        now = time.time()
        if fmt.SEGMENTS not in f:   # the first session becomes segment 0
            first = np.full(len(fmt.SEGMENT_COLUMNS), 0.0)
            first[[fmt.SEG_START_TIME, fmt.SEG_FIRST_STEP]] = (self.state[fmt.STATE_START_TIME], np.nan)
            f.create_dataset(fmt.SEGMENTS, data=first[None], maxshape=(None, len(fmt.SEGMENT_COLUMNS)),
                             chunks=(64, len(fmt.SEGMENT_COLUMNS)))
            f.create_dataset(fmt.SEGMENT_NOTES, data=np.array([_fixed("", fmt.ERROR_LEN)]), maxshape=(None,),
                             chunks=(64,))
        seg, notes = f[fmt.SEGMENTS], f[fmt.SEGMENT_NOTES]
        row = np.array([now, np.nan] + [rows[t] for t in fmt.SEGMENT_COLUMNS[2:]], dtype=np.float64)
        self.segment = seg.shape[0]
        seg.resize((self.segment + 1, seg.shape[1]))
        seg[self.segment] = row
        notes.resize((self.segment + 1,))
        notes[self.segment] = _fixed(self.session_note, fmt.ERROR_LEN)
        self._write_session_meta()
        self._segments_ds = seg
        self.state[fmt.STATE_SESSIONS] = self.segment + 1
        self.state[[fmt.STATE_HEARTBEAT, fmt.STATE_END_TIME, fmt.STATE_WRITER_FAILED]] = (now, np.nan, np.nan)
        self._state_ds[...] = self.state
        self.set_status(fmt.STATUS_RUNNING)
        self.set_error("")
        self.started = True
        self.closed = False
        self.resumed = True
        self.needs_first_step = True
        self._columns = {}
        f.flush()
        f.swmr_mode = True

    def _write_session_meta(self) -> None:
        """This session's config, host and versions in segments/meta (the metadata is the first
        session's: a resumed run's `info` showed `resume=False stop_at=150` for a run resumed
        with resume=True, stop_at=-1)."""
        f = self.f
        sessions = []
        if fmt.SEGMENT_META in f:
            try:
                sessions = fmt.decode_meta(f[fmt.SEGMENT_META][()])
            except (ValueError, UnicodeDecodeError):   # damaged: the earlier sessions' entries are lost
                sessions = []
            sessions = sessions if isinstance(sessions, list) else []
        sessions = (sessions + [None] * self.segment)[:self.segment]
        meta = self._session_meta or {}
        sessions.append({k: meta[k] for k in fmt.SEGMENT_META_KEYS if k in meta} or None)
        data = fmt.encode_meta(sessions)
        if fmt.SEGMENT_META in f:
            f[fmt.SEGMENT_META].resize((len(data),))
            f[fmt.SEGMENT_META][...] = data
        else:
            # one 64 KiB chunk: a later session's rewrite stays inside it, where a reader that
            # has the file open can still read it (a chunk the size of the first entry made the
            # next session allocate past the reader's end of file: "addr overflow")
            f.create_dataset(fmt.SEGMENT_META, data=data, maxshape=(None,), chunks=(1 << 16,))

    def _cut(self, paths) -> int:
        n = min(self.f[p].shape[0] for p in paths)
        for p in paths:
            ds = self.f[p]
            if ds.shape[0] > n:
                ds.resize((n,) + ds.shape[1:])
        return n

    def set_first_step(self, step: int) -> None:
        """The resumed session's first write: readers supersede older rows from this step on."""
        if self.needs_first_step:
            self.needs_first_step = False
            self._segments_ds[self.segment, fmt.SEG_FIRST_STEP] = float(step)

    def same_layout(self, layout: LayerLayout) -> bool:
        """Whether ``layout`` (a resumed script's model) matches the file's layer tables."""
        from .layout import per_call_rows   # (layout imports this module)

        mine = self.layout
        params = [(n, m, "x".join(map(str, s)), int(k)) for n, m, s, k in layout.params]
        # the file may hold rows of its own for later calls of a shared module (relu#2): the
        # first session saw them in its first training forward, watch() here cannot
        return (params == [tuple(p) for p in mine.params] and list(layout.snap_params) == mine.snap_params
                and per_call_rows(layout.modules, mine.modules) is not None)

    # ------------------------------------------------------------ layout
    def start(self, meta: dict, layout: LayerLayout | None = None, flush_every: float = 1.0) -> None:
        """Create every dataset, write metadata, then switch to SWMR (layout frozen)."""
        if self.started:
            raise RuntimeError("run file already started")
        f = self.f
        layout = layout or LayerLayout()
        self.layout = layout
        self.state[fmt.STATE_FLUSH_EVERY] = flush_every
        began = meta.get("start_time")
        if isinstance(began, (int, float)) and math.isfinite(began):   # an imported log's: before the file
            self.state[fmt.STATE_START_TIME] = min(self.state[fmt.STATE_START_TIME], began)
        self._state_ds[...] = self.state
        f.create_dataset(fmt.META, data=fmt.encode_meta(meta))

        def grow(name, dtype, row=(), chunk=fmt.SCALAR_CHUNK):
            f.create_dataset(name, shape=(0, *row), maxshape=(None, *row), dtype=dtype, chunks=(chunk, *row))

        grow(fmt.SCALAR_STEP, "int64")
        grow(fmt.SCALAR_TAG, "int32")
        grow(fmt.SCALAR_VALUE, "float64")
        grow(fmt.SCALAR_WALL, "float64")
        grow(fmt.TAG_NAMES, f"S{fmt.TAG_LEN}", chunk=fmt.TAG_CHUNK)

        params = [(n, m, "x".join(map(str, s)), int(k)) for n, m, s, k in layout.params]
        self._names(fmt.PARAM_NAME, [p[0] for p in params], fmt.NAME_LEN)
        self._names(fmt.PARAM_MODULE, [p[1] for p in params], fmt.NAME_LEN)
        self._names(fmt.PARAM_SHAPE, [p[2] for p in params], 64)
        f.create_dataset(fmt.PARAM_NUMEL, data=np.array([p[3] for p in params], dtype="int64"))
        self._names(fmt.MODULE_NAME, [m[0] for m in layout.modules], fmt.NAME_LEN)
        self._names(fmt.MODULE_TYPE, [m[1] for m in layout.modules], 64)
        f.create_dataset(fmt.SNAP_PARAM, data=np.array(layout.snap_params, dtype="int32"))
        f.create_dataset(fmt.SNAP_SHAPE, data=np.array(layout.snap_shapes, dtype="int32").reshape(-1, 2))

        widths = {"params": len(params), "modules": len(layout.modules), "snaps": len(layout.snap_params)}
        for group, fields in fmt.RECORD_GROUPS.items():
            n = widths[fmt.GROUP_LAYERS[group]]
            if n == 0:
                continue  # no such layers: the group is absent, readers treat it as empty
            row_bytes = sum(
                int(np.prod(fmt.row_shape(group, k, n))) * np.dtype(dt).itemsize for k, dt in fields.items()
            )
            rows = fmt.chunk_rows(row_bytes)
            grow(f"{group}/{fmt.STEP_FIELD}", "int64", chunk=max(rows, 1024))
            for name, dtype in fields.items():
                grow(f"{group}/{name}", dtype, fmt.row_shape(group, name, n), chunk=rows)
        f.swmr_mode = True
        self.started = True

    def _names(self, path: str, names: list, length: int) -> None:
        data = np.array([_fixed(n, length) for n in names], dtype=f"S{length}")
        self.f.create_dataset(path, data=data, shape=(len(names),), dtype=f"S{length}")

    # ------------------------------------------------------------ appends
    def _column(self, path: str) -> list:
        """[low-level dataset id, dtype, rows, file dataspace, memory dataspace] of a growing
        dataset, looked up once (a path lookup costs more than the append itself). The row
        count and the dataspaces are kept here, not asked of HDF5 at each append: h5py lets
        other threads take the GIL during its calls into HDF5, so each such call of this thread
        can make the training thread wait to get the GIL back (measured: ~0.6 waits for
        ``dsid.shape``, ~0.2 for a new dataspace, none for resizing a kept one)."""
        col = self._columns.get(path)
        if col is None:
            ds = self.f[path]
            space = ds.id.get_space()
            col = self._columns[path] = [ds.id, ds.dtype, ds.shape[0], space, space.copy()]
        return col

    def _append(self, path: str, data) -> None:
        # h5py's low-level calls: ds.resize + ds[a:b] = x cost ~140 us a dataset in Python
        # overhead, these ~35 us (measured), and the writer flushes many times a second.
        col = self._column(path)
        dsid, dtype, old, space, memory = col
        data = np.ascontiguousarray(data, dtype=dtype)
        n = len(data)
        if n == 0:
            return
        shape = (old + n,) + data.shape[1:]
        dsid.set_extent(shape)
        col[2] = old + n
        space.set_extent_simple(shape)
        space.select_hyperslab((old,) + (0,) * (data.ndim - 1), data.shape)
        memory.set_extent_simple(data.shape)
        dsid.write(memory, space, data)

    def add_tags(self, names: list[str]) -> None:
        """Append metric names; a tag's id is its position in the table."""
        data = np.array([fmt.encode_name(n, self.tag_len) for n in names], dtype=f"S{self.tag_len}")
        self._append(fmt.TAG_NAMES, data)
        self.n_tags += len(names)

    def append_scalars(self, step, tag, value, wall) -> None:
        self._append(fmt.SCALAR_STEP, step)
        self._append(fmt.SCALAR_TAG, tag)
        self._append(fmt.SCALAR_VALUE, value)
        self._append(fmt.SCALAR_WALL, wall)

    def append_records(self, group: str, step, fields: dict) -> None:
        """Append rows to a layer record group; ``fields`` maps field name -> (rows, *row_shape)."""
        step_path = f"{group}/{fmt.STEP_FIELD}"
        if step_path not in self._columns and group not in self.f:   # known columns: no HDF5 lookup
            return
        expected = set(fmt.RECORD_GROUPS[group])
        if set(fields) != expected:
            raise ValueError(f"{group}: fields {sorted(fields)} != {sorted(expected)}")
        # Data fields first, the step column last: a reader takes the shortest column,
        # so a flush cut short never exposes a step without its values.
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32/16 range -> inf, as it was
            for name, dtype in fmt.RECORD_GROUPS[group].items():
                self._append(f"{group}/{name}", fields[name])
        self._append(step_path, step)

    # ------------------------------------------------------------ status
    def _fixed_ds(self, path: str, value: str, length: int):
        return self.f.create_dataset(path, data=np.array([_fixed(value, length)]), chunks=(1,))

    def set_status(self, status: str) -> None:
        self._status_ds[0] = _fixed(status, fmt.STATUS_LEN)

    def set_error(self, message: str) -> None:
        self._error_ds[0] = _fixed(message, fmt.ERROR_LEN)

    def add_dropped(self, n: int) -> None:
        self.state[fmt.STATE_DROPPED] += n

    def flush(self, last_step: int | None = None) -> None:
        if last_step is not None:
            self.state[fmt.STATE_LAST_STEP] = max(last_step, self.state[fmt.STATE_LAST_STEP])
        now = time.time()
        self.state[fmt.STATE_HEARTBEAT] = now
        self._state_ds.id.write(h5s.ALL, h5s.ALL, self.state)
        self.f.flush()
        if now >= self._next_link_check:   # at the heartbeat's pace, not at every data flush
            self._next_link_check = now + LINK_CHECK_S
            self._check_link()

    def _check_link(self) -> None:
        """Warn once if the file was deleted or moved while being written (unlinked.py)."""
        try:
            state = unlinked.link_state(self.f.id.get_vfd_handle(), self.path)
        except (OSError, ValueError):   # not a POSIX descriptor: nothing to check
            return
        if state is None or state in self.link_problems:
            return
        self.link_problems.add(state)
        if state == unlinked.DELETED:
            folder = self.path.parent
            gone = f" (its folder {folder} too: it is made again then)" if not folder.is_dir() else ""
            warnings.warn(f"trainspect: the run file {self.path} was deleted while the run is being written{gone}; "
                          "the recorder keeps writing to the open file and saves it back to that path (or the "
                          "next free name) when the run closes (a kill -9 before that loses it)",
                          RecorderWarning, stacklevel=2)
        else:
            warnings.warn(f"trainspect: the run file {self.path} was moved or replaced while the run is being "
                          "written; the run goes on in the moved file", RecorderWarning, stacklevel=2)

    def close(self, status: str = fmt.STATUS_FINISHED, last_step: int | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if not self.started:
                self.start({"name": self.path.stem})
            self.set_status(status)
            self.state[fmt.STATE_END_TIME] = time.time()
            self._next_link_check = 0.0
            self.flush(last_step)
            if unlinked.DELETED in self.link_problems:
                self._save_deleted()
        finally:
            self.f.close()

    def _save_deleted(self) -> None:
        fd = self.f.id.get_vfd_handle()
        try:
            self.recovered_to = unlinked.save_copy(fd, self.path)
        except OSError as exc:
            # the folder cannot be made again (a read-only or vanished mount): the temp folder
            fallback = unlinked.fallback_path(self.path)
            try:
                self.recovered_to = unlinked.save_copy(fd, fallback)
            except OSError as exc2:
                warnings.warn(f"trainspect: the deleted run file {self.path} could not be saved back ({exc}), nor "
                              f"to {fallback} ({exc2}); its data is lost", RecorderWarning, stacklevel=2)
                return
            warnings.warn(f"trainspect: the run file {self.path} had been deleted while being written and cannot be "
                          f"saved back there ({exc}); the complete run was saved to {self.recovered_to}",
                          RecorderWarning, stacklevel=2)
            return
        warnings.warn(f"trainspect: the run file {self.path} had been deleted while being written; "
                      f"the complete run was saved to {self.recovered_to}", RecorderWarning, stacklevel=2)

