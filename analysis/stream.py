"""Stream a run file's new rows as frames (remote side) and rebuild them into a local mirror.

Protocol (stdout of ``trainspect stream``), versioned so that both ends can refuse a peer
they do not understand. Version 2 (version 1 sent every dataset's name, a 16-byte row range
and the whole 64-byte live state with each flush: ~250 bytes of framing per flush):

* preamble (unchanged across versions, so any two versions recognise each other):
  ``STREAM_MAGIC`` (8 bytes), protocol version (u16 LE), run schema version (u16 LE)
* frames: kind (1 byte) + payload length (unsigned LEB128 varint) + payload
  - ``L`` layout: JSON {datasets: [{path, dtype, shape, maxshape, chunks}], attrs: {...},
    from: {path: rows}}: the rows of each growing dataset the stream starts after (the
    mirror checks that they are the rows it holds). Datasets are numbered in list order.
  - ``B`` batch: one or more flushes of the writer, applied and flushed by the mirror as one
    (a connection cut inside a batch leaves the mirror as it was). Records, back to back:
    varint ``2*index``, varint row count, raw rows (appended at the mirror's end), or
    varint ``2*index + 1``, varint bit mask of the changed elements of a fixed-size dataset
    (live state, status, error), the changed elements' raw bytes. Rows come before state,
    so the state the mirror shows never describes rows it lacks.
  - ``E`` error: UTF-8 message; the stream ends

Batches are coalesced on the remote side: a batch leaves at once when its rows outweigh its
own cost (``WORTH_SENDING`` bytes) or the previous one left ``HOLD_S`` ago or more (a slow run
waits for nothing), otherwise ``HOLD_S`` after the previous one. So fast one-row flushes share
ssh packets instead of paying ~40 bytes of ssh framing each (at one 28-byte row every 50 ms:
3 flushes a batch, a row held up to 0.15 s).

The mirror is an ordinary SWMR run file, so every reader (tail, app) follows it unchanged.
"""
from __future__ import annotations

import json
import math
import os
import struct
import time
from pathlib import Path

import h5py
import numpy as np

from trainspect.recorder import format as fmt

STREAM_MAGIC = b"TSPSTRM\0"
PROTOCOL_VERSION = 2
PREAMBLE = struct.Struct("<8sHH")
POLL_S = 0.01
HOLD_S = 0.15          # small batches leave at most this often (more flushes share a packet)
WORTH_SENDING = 80     # row bytes that outweigh a batch's own cost (~40 B of ssh packet, ~30 B of
                       # framing and live state): the wire then carries under ~2x the rows' bytes
MAX_BATCH_BYTES = 16 << 20   # a long catch-up goes in batches of about this size


ANOTHER_RUN = "another run at the same path? remove the mirror to fetch it anew"


class StreamError(RuntimeError):
    """The stream cannot go on; the message says why in the user's terms."""


# ------------------------------------------------------------------ encoding
def varint(n: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low bits first (1 byte below 128)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(buf, pos: int) -> tuple:
    """(value, position after it) of the varint at ``buf[pos:]``."""
    n = shift = 0
    while True:
        if pos >= len(buf):
            raise StreamError("a damaged batch: a number runs past its end")
        b = buf[pos]
        n |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return n, pos


def _frame(out, kind: bytes, payload: bytes) -> None:
    out.write(kind + varint(len(payload)) + payload)


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


def _differ(now: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Elements whose bytes differ (NaN, the live state's "not yet", equals itself here)."""
    as_bytes = lambda a: a.view(np.uint8).reshape(len(a), a.dtype.itemsize)  # noqa: E731
    return (as_bytes(now) != as_bytes(old)).any(axis=1)


class _Batcher:
    """What of the open run the peer lacks: rows of growing datasets after ``sent``, and the
    elements of fixed-size datasets that differ from what was last sent."""

    def __init__(self, f, layout: dict, have: dict):
        self.f = f
        names = [d["path"] for d in layout["datasets"]]
        self.growing = {i: n for i, n in enumerate(names)
                        if layout["datasets"][i]["maxshape"][:1] == [-1]}
        self.fixed = {i: n for i, n in enumerate(names) if i not in self.growing}
        self.sent = {i: int(have.get(n, 0)) for i, n in self.growing.items()}
        self.rows = dict(self.sent)
        self.last_fixed: dict = {}    # index -> flat array last sent (none yet: all of it goes)
        self.patches: dict = {}
        self.status = ""   # the run's status as of the last look, read before its rows

    def look(self) -> int:
        """Read the live state first, then the rows (so the state never outruns the rows);
        return the bytes of rows not yet sent."""
        self.patches = {}
        for i, name in self.fixed.items():
            ds = self.f[name]
            ds.refresh()
            now = np.ascontiguousarray(ds[()]).reshape(-1)
            if name == fmt.STATUS and len(now):
                self.status = bytes(now[0]).rstrip(b"\0").decode(errors="replace")
            old = self.last_fixed.get(i)
            changed = np.ones(len(now), bool) if old is None else _differ(now, old)
            if changed.any():
                self.patches[i] = (now, changed)
        pending = 0
        for i, name in self.growing.items():
            ds = self.f[name]
            ds.refresh()
            if ds.shape[0] < self.sent[i]:
                raise StreamError(f"{name} has {ds.shape[0]} rows here, the mirror {self.sent[i]}: "
                                  f"{ANOTHER_RUN}")
            self.rows[i] = ds.shape[0]
            pending += (self.rows[i] - self.sent[i]) * ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
        return pending

    def done(self) -> bool:
        return self.sent == self.rows

    def batch(self) -> bytes:
        """The next batch of what ``look`` found, marked as sent: rows up to about
        MAX_BATCH_BYTES (a long catch-up goes in several batches), the changed state with the last."""
        parts, size, limit = [], 0, MAX_BATCH_BYTES
        for i, name in self.growing.items():
            ds = self.f[name]
            row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
            n = min(self.rows[i] - self.sent[i], max(1, (limit - size) // max(1, row_bytes)))
            if n <= 0 or size >= limit:
                continue
            rows = np.ascontiguousarray(ds[self.sent[i]:self.sent[i] + n])
            parts += [varint(2 * i), varint(n), rows.tobytes()]
            self.sent[i] += n
            size += n * row_bytes
        if self.done():
            for i, (now, changed) in self.patches.items():
                mask = int.from_bytes(np.packbits(changed, bitorder="little").tobytes(), "little")
                parts += [varint(2 * i + 1), varint(mask), now[changed].tobytes()]
                self.last_fixed[i] = now
            self.patches = {}
        return b"".join(parts)


def serve(path, have: dict, out, *, wait_s: float = 0.0, follow: bool = True, hold_s: float = HOLD_S) -> None:
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
    batcher = _Batcher(f, layout, have)
    layout["from"] = {name: batcher.sent[i] for i, name in batcher.growing.items()}
    _frame(out, b"L", json.dumps(layout).encode())
    try:
        _follow(path, batcher, out, follow, hold_s)
    except StreamError as exc:   # the file no longer continues what the peer holds
        _frame(out, b"E", str(exc).encode())
        out.flush()
    finally:
        f.close()


def _follow(path, batcher, out, follow: bool, hold_s: float) -> None:
    """Send batches after each change of the file (coalesced) until the run ends."""
    last_sent = -math.inf   # monotonic time of the last batch sent
    while True:
        stamp = _stamp(path)
        pending = batcher.look()
        ended = not follow or batcher.status in (fmt.STATUS_FINISHED, fmt.STATUS_CRASHED)
        held = False
        if pending or batcher.patches:
            now = time.monotonic()
            if ended or pending >= WORTH_SENDING or now - last_sent >= hold_s:
                while True:
                    _frame(out, b"B", batcher.batch())
                    if batcher.done():
                        break
                out.flush()
                last_sent = now
            else:
                held = True
        if ended:
            out.flush()
            return
        deadline = last_sent + hold_s if held else None
        while _stamp(path) == stamp and (deadline is None or time.monotonic() < deadline):
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


def _read_length(src) -> tuple:
    """(payload length, bytes its varint took) read from the stream."""
    n = shift = 0
    for used in range(1, 11):
        (b,) = _read_exact(src, 1)
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, used
    raise StreamError("a damaged stream: a frame length runs past 10 bytes")


def _take(payload: bytes, pos: int, dtype, count: int) -> tuple:
    """(``count`` values of ``dtype`` at ``payload[pos:]``, position after them)."""
    end = pos + count * dtype.itemsize
    if end > len(payload):
        raise StreamError("a damaged batch: its records run past its end")
    return np.frombuffer(payload, dtype, count, pos), end


def _attr_value(spec):
    if "bytes" in spec:
        return np.bytes_(bytes.fromhex(spec["bytes"]))
    return np.int64(spec["int"]) if "int" in spec else np.float64(spec["float"])


def check_preamble(raw: bytes) -> None:
    """StreamError naming the fix unless ``raw`` opens a stream this trainspect reads."""
    magic, proto, schema = PREAMBLE.unpack(raw)
    if magic != STREAM_MAGIC:
        raise StreamError("the remote did not answer with a trainspect stream "
                          f"(got {magic!r}); is trainspect installed there?")
    if proto != PROTOCOL_VERSION:
        raise StreamError(f"the remote trainspect speaks stream protocol {proto}, this one {PROTOCOL_VERSION}; "
                          "install the same trainspect version on both machines")
    if schema > fmt.SCHEMA_VERSION:
        raise StreamError(f"the remote run has schema version {schema}, this trainspect reads up to "
                          f"{fmt.SCHEMA_VERSION}; upgrade trainspect here")


class Mirror:
    """A local run file kept equal to the remote one, batch by batch.

    Rows are only ever appended at the mirror's own end (a stream that does not start there
    is refused), and a batch is applied whole or not at all, so a dropped connection leaves
    a valid, shorter file to resume from.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.f = None
        self._unnamed = None   # the .part file of a new mirror until its first batch
        self._names: list = []  # dataset paths in the layout's order (batches name them by index)
        self.bytes_in = 0   # bytes of frames received (for the no-refetch check)
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

    def _start(self, layout: dict) -> None:
        if self.f is None:
            self._create(layout)
        self._names = [d["path"] for d in layout["datasets"]]
        absent = [name for name in self._names if name not in self.f]
        if absent:
            raise StreamError(f"the remote run has datasets the mirror lacks ({', '.join(absent[:3])}): "
                              f"{ANOTHER_RUN} ({self.path})")
        held = self.rows()
        for name, first in layout.get("from", {}).items():
            if held.get(name) != first:
                raise StreamError(f"remote sends {name} from row {first} but the mirror holds {held.get(name)}")

    def _apply(self, payload: bytes) -> None:
        """One batch: every record parsed first (a damaged one changes nothing), then rows
        appended, then the live state written, then one flush. The live state comes with the
        last batch of a catch-up only, so a new mirror gets its name with that one."""
        rows, patches, pos = [], [], 0
        while pos < len(payload):
            key, pos = read_varint(payload, pos)
            if key // 2 >= len(self._names):
                raise StreamError(f"a batch names dataset {key // 2}, the layout has {len(self._names)}")
            ds = self.f[self._names[key // 2]]
            if key % 2 == 0:
                count, pos = read_varint(payload, pos)
                values, pos = _take(payload, pos, ds.dtype, count * int(np.prod(ds.shape[1:])))
                rows.append((ds, values.reshape(count, *ds.shape[1:])))
            else:
                mask, pos = read_varint(payload, pos)
                if mask >> ds.size:
                    raise StreamError(f"a damaged batch: {ds.name} has {ds.size} elements, the batch changes more")
                bits = np.frombuffer(mask.to_bytes((ds.size + 7) // 8, "little"), np.uint8)
                changed = np.unpackbits(bits, count=ds.size, bitorder="little").astype(bool)
                values, pos = _take(payload, pos, ds.dtype, int(changed.sum()))
                patches.append((ds, changed, values))
        for ds, new in rows:
            first = ds.shape[0]
            ds.resize(first + len(new), axis=0)
            ds[first:] = new
        for ds, changed, values in patches:
            now = np.ascontiguousarray(ds[()]).reshape(-1).copy()
            now[changed] = values
            ds[...] = now.reshape(ds.shape)
        self.f.flush()
        if self._unnamed is not None and patches:   # state written: a whole, readable run
            os.replace(self._unnamed, self.path)   # the writer keeps its handle
            self._unnamed = None

    def consume(self, src, on_batch=None) -> None:
        """Apply frames from ``src`` (a binary stream) until it ends. StreamError on a
        remote error or a peer that speaks another version; EOFError if cut mid-way."""
        check_preamble(_read_exact(src, PREAMBLE.size))
        while True:
            try:
                kind = src.read(1)
            except (OSError, ValueError):
                kind = b""
            if not kind:
                return
            n, used = _read_length(src)
            payload = _read_exact(src, n)
            self.bytes_in += 1 + used + n
            if kind == b"E":
                raise StreamError(payload.decode(errors="replace"))
            if kind == b"L":
                self._start(json.loads(payload))
            elif kind == b"B":
                if self.f is None:
                    raise StreamError("a batch came before the layout")
                self._apply(payload)
                if on_batch is not None:
                    on_batch()
            else:
                raise StreamError(f"unknown frame {kind!r} in a stream of protocol {PROTOCOL_VERSION}")

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
