"""Low-level writer of a run file. One thread owns an instance; no torch here.

Life cycle: ``RunFileWriter(path)`` creates the file (so a bad path fails at once),
``start(meta, layout)`` creates every object and switches to SWMR, then only
``add_tags`` / ``append_*`` / ``flush`` / ``close`` — the layout is frozen from then on.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5s

from . import format as fmt


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
    def __init__(self, path):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Built under a temporary name and renamed into place: a reader never finds a half-made
        # file at the path, and one still reading a run this file replaces (overwrite=True)
        # keeps reading that run's inode instead of meeting a file truncated under it.
        building = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        self.f = h5py.File(building, "w", libver="latest", locking=False)
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

    # ------------------------------------------------------------ layout
    def start(self, meta: dict, layout: LayerLayout | None = None, flush_every: float = 1.0) -> None:
        """Create every dataset, write metadata, then switch to SWMR (layout frozen)."""
        if self.started:
            raise RuntimeError("run file already started")
        f = self.f
        layout = layout or LayerLayout()
        self.layout = layout
        self.state[fmt.STATE_FLUSH_EVERY] = flush_every
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
    def _column(self, path: str):
        """(low-level dataset id, dtype) of a growing dataset; looked up once (a path lookup
        costs more than the append itself)."""
        col = self._columns.get(path)
        if col is None:
            ds = self.f[path]
            col = self._columns[path] = (ds.id, ds.dtype)
        return col

    def _append(self, path: str, data) -> None:
        # h5py's low-level calls: ds.resize + ds[a:b] = x cost ~140 us a dataset in Python
        # overhead, these ~35 us (measured), and the writer flushes many times a second.
        dsid, dtype = self._column(path)
        data = np.ascontiguousarray(data, dtype=dtype)
        n = len(data)
        if n == 0:
            return
        old = dsid.shape[0]
        dsid.set_extent((old + n,) + data.shape[1:])
        space = dsid.get_space()
        space.select_hyperslab((old,) + (0,) * (data.ndim - 1), data.shape)
        dsid.write(h5s.create_simple(data.shape), space, data)

    def add_tags(self, names: list[str]) -> None:
        """Append metric names; a tag's id is its position in the table."""
        data = np.array([fmt.encode_name(n, fmt.TAG_LEN) for n in names], dtype=f"S{fmt.TAG_LEN}")
        self._append(fmt.TAG_NAMES, data)
        self.n_tags += len(names)

    def append_scalars(self, step, tag, value, wall) -> None:
        self._append(fmt.SCALAR_STEP, step)
        self._append(fmt.SCALAR_TAG, tag)
        self._append(fmt.SCALAR_VALUE, value)
        self._append(fmt.SCALAR_WALL, wall)

    def append_records(self, group: str, step, fields: dict) -> None:
        """Append rows to a layer record group; ``fields`` maps field name -> (rows, *row_shape)."""
        if group not in self.f:
            return
        expected = set(fmt.RECORD_GROUPS[group])
        if set(fields) != expected:
            raise ValueError(f"{group}: fields {sorted(fields)} != {sorted(expected)}")
        # Data fields first, the step column last: a reader takes the shortest column,
        # so a flush cut short never exposes a step without its values.
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32/16 range -> inf, as it was
            for name, dtype in fmt.RECORD_GROUPS[group].items():
                self._append(f"{group}/{name}", fields[name])
        self._append(f"{group}/{fmt.STEP_FIELD}", step)

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
        self.state[fmt.STATE_HEARTBEAT] = time.time()
        self._state_ds.id.write(h5s.ALL, h5s.ALL, self.state)
        self.f.flush()

    def close(self, status: str = fmt.STATUS_FINISHED, last_step: int | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if not self.started:
                self.start({"name": self.path.stem})
            self.set_status(status)
            self.state[fmt.STATE_END_TIME] = time.time()
            self.flush(last_step)
        finally:
            self.f.close()

