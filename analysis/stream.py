"""Stream a run file's new rows as frames (remote side) and rebuild them into a local mirror.

Protocol (stdout of ``trainspect stream``), versioned so that both ends can refuse a peer
they do not understand. Version 3 (version 2 sent the changed-elements mask of a fixed-size
dataset as one varint, which took time quadratic in the dataset's size: a 20 MB meta/json never
left; version 1 sent every dataset's name, a 16-byte row range and the whole 64-byte live state
with each flush: ~250 bytes of framing per flush):

* preamble (unchanged across versions, so any two versions recognise each other):
  ``STREAM_MAGIC`` (8 bytes), protocol version (u16 LE), run schema version (u16 LE)
* frames: kind (1 byte) + payload length (unsigned LEB128 varint) + payload
  - ``L`` layout: JSON {datasets: [{path, dtype, shape, maxshape, chunks}], attrs: {...},
    from: {path: rows}}: the rows of each growing dataset the stream starts after (the
    mirror checks that they are the rows it holds, and that its datasets have these types and
    shapes). Datasets are numbered in list order; a fixed-size one larger than readers read
    whole (``layout_check``: a table of 10^9 names in a 2 MB file) is left out, as readers leave
    it out. ``attrs`` holds the format's root attributes (``trainspect_format``,
    ``schema_version``) as the recorder writes them, and no other: no reader uses another, and
    one may be an array of any size.
  - ``B`` batch: one or more flushes of the writer, applied and flushed by the mirror as one
    (a connection cut inside a batch leaves the mirror as it was). Records, back to back:
    varint ``2*index``, varint row count, raw rows (appended at the mirror's end), or
    varint ``2*index + 1``, the mask of the changed elements of a fixed-size dataset (live
    state, status, error; the first batch of a connection sends every dataset whole): one bit
    an element, low bit first (``np.packbits(bitorder="little")``), ``ceil(size / 8)`` bytes
    for the layout's size, bits past the size clear; then the changed elements' raw bytes.
    Rows come before state, so the state the mirror shows never describes rows it lacks.
    Rows go up to those the file stores (``layout_check.stored_rows``, as every reader
    counts them): a column resized to 10^9 rows no chunk holds sends the rows its chunks hold.
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

from .layout_check import check_layout, stored_rows, whole_read_limit

STREAM_MAGIC = b"TSPSTRM\0"
PROTOCOL_VERSION = 3
PREAMBLE = struct.Struct("<8sHH")
POLL_S = 0.01
HOLD_S = 0.15          # small batches leave at most this often (more flushes share a packet)
WORTH_SENDING = 80     # row bytes that outweigh a batch's own cost (~40 B of ssh packet, ~30 B of
                       # framing and live state): the wire then carries under ~2x the rows' bytes
MAX_BATCH_BYTES = 16 << 20   # a long catch-up goes in batches of about this size
MAX_VARINT_BYTES = 10        # a varint holds at most 64 bits (lengths, counts, indices)


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
    for _ in range(MAX_VARINT_BYTES):
        if pos >= len(buf):
            raise StreamError("a damaged batch: a number runs past its end")
        b = buf[pos]
        n |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return n, pos
    raise StreamError(f"a damaged batch: a number runs past {MAX_VARINT_BYTES} bytes")


def _frame(out, kind: bytes, payload: bytes) -> None:
    out.write(kind + varint(len(payload)) + payload)


# ------------------------------------------------------------------ remote side
def _datasets(f) -> list:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


def _header(schema: int) -> dict:
    """The root attributes as the recorder writes them, the only ones readers use (check_header
    has read the file's): another one may be an array of any size, so none other is sent."""
    return {fmt.ATTR_MAGIC: {"bytes": fmt.FORMAT_MAGIC.encode().hex()}, fmt.ATTR_SCHEMA: {"int": schema}}


def _streamed(ds, file_size: int) -> bool:
    """Whether ``ds`` goes: a growing one does, up to its stored rows; a fixed-size one is read
    whole at every look, so not one claiming more than readers read whole (layout_check leaves
    out a 2 MB file's table of 10^9 names: the mirror lacks it)."""
    return ds.maxshape[:1] == (None,) or math.prod(ds.shape) * ds.dtype.itemsize <= whole_read_limit(file_size)


def layout_of(f, schema: int) -> dict:
    sets, file_size = [], _size(f.filename)
    for name in _datasets(f):
        ds = f[name]
        if not _streamed(ds, file_size):
            continue
        sets.append({"path": name, "dtype": ds.dtype.str, "shape": list(ds.shape),
                     "maxshape": [m if m is not None else -1 for m in ds.maxshape],
                     "chunks": list(ds.chunks) if ds.chunks else None})
    return {"datasets": sets, "attrs": _header(schema)}


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _size(path) -> int:
    stamp = _stamp(path)
    return stamp[1] if stamp else 0   # removed meanwhile: only rows that chunks hold count


WAITABLE = ("no such file", "run is starting")


def _open_started(path, wait_s: float):
    """Open the run once its writer has created every dataset (SWMR started), the way every
    reader opens one (analysis.run): plain when closed, bounded SWMR retries when live, and
    nothing outside the documented layout (a shared run must not stream /etc/passwd)."""
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
            # Not ds.shape[0]: a column resized to 10^9 rows that no chunk holds is 28 GB of fill.
            # The size is read after the extent, so it includes the rows the extent counts.
            stored = stored_rows(ds, _size(self.f.filename))
            if stored < self.sent[i]:
                raise StreamError(f"{name} has {stored} rows here, the mirror {self.sent[i]}: "
                                  f"{ANOTHER_RUN}")
            self.rows[i] = stored
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
                parts += [varint(2 * i + 1), np.packbits(changed, bitorder="little").tobytes(),
                          now[changed].tobytes()]
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
    schema = int(f.attrs[fmt.ATTR_SCHEMA])   # an integer: check_header refuses anything else
    out.write(PREAMBLE.pack(STREAM_MAGIC, PROTOCOL_VERSION, schema))
    layout = layout_of(f, schema)
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
    parts, left = [], n
    while left:   # joined once at the end: ``+=`` of short reads is quadratic in a big frame
        chunk = src.read(left)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_length(src) -> tuple:
    """(payload length, bytes its varint took) read from the stream."""
    n = shift = 0
    for used in range(1, MAX_VARINT_BYTES + 1):
        (b,) = _read_exact(src, 1)
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, used
    raise StreamError(f"a damaged stream: a frame length runs past {MAX_VARINT_BYTES} bytes")


def _take(payload: bytes, pos: int, dtype, count: int) -> tuple:
    """(``count`` values of ``dtype`` at ``payload[pos:]``, position after them)."""
    end = pos + count * dtype.itemsize
    if end > len(payload):
        raise StreamError("a damaged batch: its records run past its end")
    return np.frombuffer(payload, dtype, count, pos), end


def _mask(payload: bytes, pos: int, ds) -> tuple:
    """(changed elements of the fixed-size ``ds``, position after their mask)."""
    bits, pos = _take(payload, pos, np.dtype(np.uint8), (ds.size + 7) // 8)
    if ds.size % 8 and bits[-1] >> (ds.size % 8):
        raise StreamError(f"a damaged batch: {ds.name} has {ds.size} elements, the batch changes more")
    return np.unpackbits(bits, count=ds.size, bitorder="little").astype(bool), pos


def _fits(ds, d: dict) -> bool:
    """Whether the mirror's ``ds`` has the type and shape (row shape if growing) of the layout's
    ``d``: a batch is parsed with the mirror's shapes (a mask's length is its dataset's size)."""
    if not isinstance(ds, h5py.Dataset) or ds.dtype.str != d["dtype"]:
        return False
    skip = 1 if d["maxshape"][:1] == [-1] else 0
    return list(ds.shape[skip:]) == d["shape"][skip:]


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
        absent = [d["path"] for d in layout["datasets"] if not _fits(self.f.get(d["path"]), d)]
        if absent:
            raise StreamError(f"the remote run has datasets the mirror lacks or holds in another shape "
                              f"({', '.join(absent[:3])}): {ANOTHER_RUN} ({self.path})")
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
                changed, pos = _mask(payload, pos, ds)
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
