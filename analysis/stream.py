"""Stream a run file's new rows as frames (remote side) and rebuild them into a local mirror.

Protocol (stdout of ``trainspect stream``), versioned so that both ends can refuse a peer
they do not understand:

* preamble: ``STREAM_MAGIC`` (8 bytes), protocol version (u16), run schema version (u16)
* frames: kind (1 byte) + payload length (u32, little endian) + payload
  - ``L`` layout: JSON {datasets: [{path, dtype, shape, maxshape, chunks}], attrs: {...}}
  - ``R`` rows: u16 path length, path, u64 first row, u64 row count, raw row bytes
  - ``S`` state: u16 path length, path, raw bytes of a whole fixed-size dataset
  - ``F`` batch end: the mirror flushes (readers see the batch at once, state after rows)
  - ``E`` error: UTF-8 message; the stream ends

The mirror is an ordinary SWMR run file, so every reader (tail, app) follows it unchanged.
"""
from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import h5py
import numpy as np

from trainspect.recorder import format as fmt

STREAM_MAGIC = b"TSPSTRM\0"
PROTOCOL_VERSION = 1
PREAMBLE = struct.Struct("<8sHH")
FRAME = struct.Struct("<cI")
ROWS = struct.Struct("<QQ")
POLL_S = 0.01


class StreamError(RuntimeError):
    """The stream cannot go on; the message says why in the user's terms."""


# ------------------------------------------------------------------ remote side
def _datasets(f) -> list:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


def _attr(v):
    if isinstance(v, (bytes, np.bytes_)):
        return {"bytes": bytes(v).hex()}
    return {"int": int(v)} if isinstance(v, (int, np.integer)) else {"float": float(v)}


def layout_of(f) -> dict:
    sets = []
    for name in _datasets(f):
        ds = f[name]
        sets.append({"path": name, "dtype": ds.dtype.str, "shape": list(ds.shape),
                     "maxshape": [m if m is not None else -1 for m in ds.maxshape],
                     "chunks": list(ds.chunks) if ds.chunks else None})
    return {"datasets": sets, "attrs": {k: _attr(v) for k, v in f.attrs.items()}}


def _frame(out, kind: bytes, payload: bytes) -> None:
    out.write(FRAME.pack(kind, len(payload)))
    out.write(payload)


def _path_bytes(path: str) -> bytes:
    b = path.encode()
    return struct.pack("<H", len(b)) + b


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


WAITABLE = ("no such file", "run is starting")


def _open_started(path, wait_s: float):
    """Open the run once its writer has created every dataset (SWMR started), the way every
    reader opens one (analysis.run): plain when closed, bounded SWMR retries when live, and
    nothing outside the documented layout (a shared run must not stream /etc/passwd)."""
    from .layout_check import check_layout

    deadline = time.monotonic() + wait_s
    while True:
        f = None
        try:
            f = fmt.open_for_read(path)
            check_layout(f, path)
            return f
        except fmt.RunFileError as exc:
            if f is not None:
                f.close()
            if time.monotonic() >= deadline or not any(w in str(exc) for w in WAITABLE):
                raise StreamError(str(exc)) from None
        time.sleep(0.1)


def serve(path, have: dict, out, *, wait_s: float = 0.0, follow: bool = True) -> None:
    """Write the preamble, the layout and then every row not in ``have`` ({path: rows}),
    then keep sending new rows after each change of the file until the run ends."""
    try:
        f = _open_started(path, wait_s)
    except StreamError as exc:
        out.write(PREAMBLE.pack(STREAM_MAGIC, PROTOCOL_VERSION, fmt.SCHEMA_VERSION))
        _frame(out, b"E", str(exc).encode())
        out.flush()
        return
    schema = int(f.attrs.get(fmt.ATTR_SCHEMA, -1))
    out.write(PREAMBLE.pack(STREAM_MAGIC, PROTOCOL_VERSION, schema))
    layout = layout_of(f)
    _frame(out, b"L", json.dumps(layout).encode())
    growing = [d["path"] for d in layout["datasets"] if d["maxshape"] and d["maxshape"][0] == -1]
    fixed = [d["path"] for d in layout["datasets"] if d["path"] not in growing]
    sent = {p: int(have.get(p, 0)) for p in growing}
    last_fixed: dict = {}
    stamp = None
    while True:
        stamp = _stamp(path)
        for p in growing:
            ds = f[p]
            ds.refresh()
            n = ds.shape[0]
            if n > sent[p]:
                rows = np.ascontiguousarray(ds[sent[p]:n])
                _frame(out, b"R", _path_bytes(p) + ROWS.pack(sent[p], n - sent[p]) + rows.tobytes())
                sent[p] = n
        for p in fixed:
            ds = f[p]
            ds.refresh()
            raw = np.ascontiguousarray(ds[()]).tobytes()
            if last_fixed.get(p) != raw:
                _frame(out, b"S", _path_bytes(p) + raw)
                last_fixed[p] = raw
        _frame(out, b"F", b"")
        out.flush()
        status = bytes(f[fmt.STATUS][0]).rstrip(b"\0").decode(errors="replace")
        if not follow or status in (fmt.STATUS_FINISHED, fmt.STATUS_CRASHED):
            f.close()
            return
        while _stamp(path) == stamp:
            time.sleep(POLL_S)


# ------------------------------------------------------------------ local side
def _read_exact(src, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = src.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _unpack_path(payload: bytes) -> tuple:
    (k,) = struct.unpack_from("<H", payload)
    return payload[2:2 + k].decode(), 2 + k


def _attr_value(spec):
    if "bytes" in spec:
        return np.bytes_(bytes.fromhex(spec["bytes"]))
    return np.int64(spec["int"]) if "int" in spec else np.float64(spec["float"])


class Mirror:
    """A local run file kept equal to the remote one, frame by frame.

    Rows are only ever appended at the mirror's own end (a frame that does not continue it
    is refused), so a dropped connection leaves a valid, shorter file to resume from.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.f = None
        self._unnamed = None   # the .part file of a new mirror until its first batch
        self.bytes_in = 0   # payload bytes received (for the no-refetch check)
        if self.path.exists():
            try:
                self.f = h5py.File(self.path, "r+", libver="latest", locking=False)
                self.f.swmr_mode = True
            except OSError:
                self.f = None   # unusable leftover: rebuilt from the first row
                self.path.unlink()

    def rows(self) -> dict:
        """{dataset path: rows held} of every growing dataset (what to ask the remote for)."""
        if self.f is None:
            return {}
        return {p: self.f[p].shape[0] for p in _datasets(self.f) if self.f[p].maxshape[0] is None}

    def _create(self, layout: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        f = h5py.File(tmp, "w", libver="latest", locking=False)
        for k, spec in layout["attrs"].items():
            f.attrs[k] = _attr_value(spec)
        for d in layout["datasets"]:
            maxshape = tuple(None if m == -1 else m for m in d["maxshape"])
            growing = maxshape and maxshape[0] is None
            shape = (0, *d["shape"][1:]) if growing else tuple(d["shape"])
            f.create_dataset(d["path"], shape=shape, maxshape=maxshape, dtype=np.dtype(d["dtype"]),
                             chunks=tuple(d["chunks"]) if d["chunks"] else None)
        f.close()
        self.f = h5py.File(tmp, "r+", libver="latest", locking=False)
        self.f.swmr_mode = True
        # The mirror appears under its name only with its first batch, flushed in SWMR mode
        # (see consume): a reader that opens it at once never sees a half-made file.
        self._unnamed = tmp

    def consume(self, src, on_batch=None) -> None:
        """Apply frames from ``src`` (a binary stream) until it ends. StreamError on a
        remote error or a peer that speaks another version; EOFError if cut mid-way."""
        magic, proto, schema = PREAMBLE.unpack(_read_exact(src, PREAMBLE.size))
        if magic != STREAM_MAGIC:
            raise StreamError("the remote did not answer with a trainspect stream "
                              f"(got {magic!r}); is trainspect installed there?")
        if proto != PROTOCOL_VERSION:
            raise StreamError(f"the remote trainspect speaks stream protocol {proto}, this one {PROTOCOL_VERSION}; "
                              "install the same trainspect version on both machines")
        if schema > fmt.SCHEMA_VERSION:
            raise StreamError(f"the remote run has schema version {schema}, this trainspect reads up to "
                              f"{fmt.SCHEMA_VERSION}; upgrade trainspect here")
        fixed_pending: dict = {}
        while True:
            try:
                head = src.read(FRAME.size)
            except (OSError, ValueError):
                head = b""
            if not head:
                return
            if len(head) < FRAME.size:
                head += _read_exact(src, FRAME.size - len(head))
            kind, n = FRAME.unpack(head)
            payload = _read_exact(src, n)
            self.bytes_in += FRAME.size + n
            if kind == b"E":
                raise StreamError(payload.decode(errors="replace"))
            if kind == b"L":
                if self.f is None:
                    self._create(json.loads(payload))
            elif kind == b"R":
                path, off = _unpack_path(payload)
                first, count = ROWS.unpack_from(payload, off)
                ds = self.f[path]
                if first != ds.shape[0]:
                    raise StreamError(f"remote sent rows {first}.. of {path} but the mirror holds {ds.shape[0]}")
                rows = np.frombuffer(payload, ds.dtype, offset=off + ROWS.size).reshape(count, *ds.shape[1:])
                ds.resize(first + count, axis=0)
                ds[first:] = rows
            elif kind == b"S":
                path, off = _unpack_path(payload)
                fixed_pending[path] = payload[off:]
            elif kind == b"F":
                # Rows first, then the live state (heartbeat, status) that describes them.
                for path, raw in fixed_pending.items():
                    ds = self.f[path]
                    ds[...] = np.frombuffer(raw, ds.dtype).reshape(ds.shape)
                fixed_pending.clear()
                self.f.flush()
                if self._unnamed is not None:
                    os.replace(self._unnamed, self.path)   # the writer keeps its handle
                    self._unnamed = None
                if on_batch is not None:
                    on_batch()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
