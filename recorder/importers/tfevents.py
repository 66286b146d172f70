"""A TensorBoard event-file reader of its own: TFRecord framing with CRC-32C checks and the few
protobuf fields trainspect needs (Event.wall_time/step/summary, Summary.Value tag, simple_value,
scalar tensors and histograms). No tensorboard or protobuf at runtime.

Speed comes from numpy: records are grouped by length; records of a length that repeat at a
constant stride (a log writing the same tags in the same order) are read through strided views
of the file, the rest gathered. Their CRCs are computed for the whole group at once, one table
lookup per two byte positions (CRC-32C is linear: ``_position_tables``), and scalar events whose
bytes match a decoded template (same tag, same layout) are decoded as arrays, eight bytes
compared at a time. Everything else goes through a small per-record protobuf parser.

Record format (tensorflow/core/lib/io/record_writer.cc):
    uint64 length | uint32 masked_crc32c(length) | bytes data[length] | uint32 masked_crc32c(data)
"""
from __future__ import annotations

import functools
import json
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_POLY = 0x82F63B78


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(x) for x in _TABLE]


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _TABLE_LIST
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _masked_crc_rows(rows: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of every row of a 2-D uint8 array, computed column by column."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, np.uint32)
    for j in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    return _masked(crc ^ np.uint32(0xFFFFFFFF))


class EventFileError(ValueError):
    """The file is not a TensorBoard event file, or a record failed its CRC check."""


@dataclass
class Histogram:
    step: int
    wall_time: float
    min: float
    max: float
    num: float
    sum: float
    sum_squares: float
    bucket_limit: np.ndarray
    bucket: np.ndarray


@dataclass
class EventData:
    scalars: dict = field(default_factory=dict)      # tag -> (steps int64, values float64, wall_times float64)
    histograms: dict = field(default_factory=dict)   # tag -> [Histogram]
    records: int = 0
    corrupt_tail: bool = False                       # a truncated last record (a run still writing or killed)
    skipped: dict = field(default_factory=dict)      # kind ("image", "text", a plugin) -> {tag: summaries not read}
    hparams: dict = field(default_factory=dict)      # the hparams plugin's session hyperparameters (add_hparams,
    #                                                  Lightning's log_hyperparams): name -> float | str | bool;
    #                                                  and a JSON text's settings: tag -> dict (CONFIG_TEXT_KEYS)


# --- minimal protobuf decoding -------------------------------------------------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start=0, end=None):
    """(field number, wire type, value, value start) for each field of a message."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos2 = _varint(buf, pos)
        elif wt == 1:
            v, pos2 = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            n, p = _varint(buf, pos)
            v, pos2 = (p, p + n), p + n
        elif wt == 5:
            v, pos2 = buf[pos:pos + 4], pos + 4
        else:
            raise EventFileError(f"unsupported protobuf wire type {wt}")
        if pos2 > end:
            raise EventFileError("protobuf field runs past its message")
        yield num, wt, v, pos
        pos = pos2


def _packed_doubles(buf, span, wt, v):
    if wt == 2:
        return np.frombuffer(bytes(buf[span[0]:span[1]]), "<f8")
    return np.frombuffer(bytes(v), "<f8")


def _histogram(buf, a, b, step, wall):
    vals = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0}
    limits, counts = [], []
    for num, wt, v, _ in _fields(buf, a, b):
        if num in vals and wt == 1:
            vals[num] = struct.unpack("<d", v)[0]
        elif num == 6:
            limits.append(_packed_doubles(buf, v, wt, v))
        elif num == 7:
            counts.append(_packed_doubles(buf, v, wt, v))
    return Histogram(step, wall, vals[1], vals[2], vals[3], vals[4], vals[5],
                     np.concatenate(limits) if limits else np.zeros(0), np.concatenate(counts) if counts else np.zeros(0))


def _tensor_scalar(buf, a, b):
    """The value of a scalar TensorProto (dtype float/double/int), else None."""
    dtype = None
    for num, wt, v, _ in _fields(buf, a, b):
        if num == 1 and wt == 0:
            dtype = v
        elif num == 4 and wt == 2 and v[1] > v[0]:           # tensor_content
            raw = bytes(buf[v[0]:v[1]])
            fmt = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8"}.get(dtype)
            if fmt and len(raw) == np.dtype(fmt).itemsize:
                return float(np.frombuffer(raw, fmt)[0])
        elif num == 5:                                         # float_val
            arr = np.frombuffer(bytes(buf[v[0]:v[1]]) if wt == 2 else bytes(v), "<f4")
            if len(arr) == 1:
                return float(arr[0])
        elif num == 6:                                         # double_val
            arr = np.frombuffer(bytes(buf[v[0]:v[1]]) if wt == 2 else bytes(v), "<f8")
            if len(arr) == 1:
                return float(arr[0])
    return None


def _proto_value(buf, a, b):
    """A google.protobuf.Value as a number, a string or a bool (None for null, structs and lists)."""
    for num, wt, v, _ in _fields(buf, a, b):
        if num == 2 and wt == 1:
            # Protobuf numbers are doubles: add_hparams({"batch": 64}) comes back 64.0, shown
            # "64" by TensorBoard; a whole number is given back as an int to show it so too.
            x = struct.unpack("<d", v)[0]
            return int(x) if x.is_integer() and abs(x) < 2 ** 53 else x
        if num == 3 and wt == 2:
            return _text(buf, v)
        if num == 4 and wt == 0:
            return bool(v)
    return None


def _text(buf, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _children(buf, span, number):
    """The spans of the length-delimited fields numbered ``number`` of the message at ``span``."""
    return [v for num, wt, v, _ in _fields(buf, *span) if num == number and wt == 2]


def _hparams(buf, a, b) -> dict | None:
    """The hyperparameters of the "hparams" plugin's SummaryMetadata whose content is a
    SessionStartInfo (HParamsPluginData field 3, its map<string, Value> hparams field 1); None
    for other content (tensorboard/plugins/hparams/plugin_data.proto)."""
    for plugin in _children(buf, (a, b), 1):                       # plugin_data
        for content in _children(buf, plugin, 2):
            for session in _children(buf, content, 3):             # session_start_info
                out = {}
                for entry in _children(buf, session, 1):           # the hparams map's entries
                    keys = [_text(buf, k) for k in _children(buf, entry, 1)]
                    values = [_proto_value(buf, *v) for v in _children(buf, entry, 2)]
                    if keys and values and values[-1] is not None:
                        out[keys[-1]] = values[-1]
                return out
    return None


# A text summary holding a JSON object is a run's settings: the HF Trainer writes its
# TrainingArguments so (add_text("args", args.to_json_string())) and its model's config
# ("model_config"), and many scripts add_text("config", json.dumps(cfg)). Stored as the config
# under the tag, "args" under the name trainspect's own HF callback gives it.
CONFIG_TEXT_KEYS = {"args": "training_args"}
MAX_CONFIG_TEXT = 1 << 20


def _plugin_name(buf, meta) -> str | None:
    for plugin in _children(buf, meta, 1):                         # SummaryMetadata.plugin_data
        names = [_text(buf, n) for n in _children(buf, plugin, 1)]
        return names[-1] if names else None
    return None


def _json_object(buf, tensor) -> dict | None:
    """The JSON object a string TensorProto (string_val, field 8) holds, or None."""
    for raw in _children(buf, tensor, 8):
        if raw[1] - raw[0] > MAX_CONFIG_TEXT:
            return None
        text = bytes(buf[raw[0]:raw[1]]).decode("utf-8", "replace").strip()
        if not text.startswith("{"):
            return None
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return obj if isinstance(obj, dict) and obj else None
    return None


SKIPPED_KINDS = {4: "image", 6: "audio"}   # Summary.Value fields the importer does not convert


def parse_event(buf, start=0, end=None):
    """Decode one Event: (wall_time, step, [(tag, 'scalar', value) | (tag, 'histogram', Histogram)
    | (tag, 'hparams', {name: value})])."""
    wall, step, out, summaries = 0.0, 0, [], []
    for num, wt, v, _ in _fields(buf, start, end):
        if num == 1 and wt == 1:
            wall = struct.unpack("<d", v)[0]
        elif num == 2 and wt == 0:
            step = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 5 and wt == 2:
            summaries.append(v)
    for a, b in summaries:
        for num, wt, v, _ in _fields(buf, a, b):
            if num != 1 or wt != 2:
                continue
            tag, value, tensor, plugin, other = None, None, None, None, None
            for vn, vwt, vv, _ in _fields(buf, v[0], v[1]):
                if vn == 1 and vwt == 2:
                    tag = _text(buf, vv)
                elif vn in SKIPPED_KINDS and vwt == 2:
                    other = SKIPPED_KINDS[vn]
                elif vn == 2 and vwt == 5:
                    value = ("scalar", struct.unpack("<f", vv)[0])
                elif vn == 5 and vwt == 2:
                    value = ("histogram", _histogram(buf, vv[0], vv[1], step, wall))
                elif vn == 8 and vwt == 2:
                    tensor = vv
                    t = _tensor_scalar(buf, vv[0], vv[1])
                    if t is not None and (value is None or value[0] != "hparams"):
                        value = ("scalar", t)
                elif vn == 9 and vwt == 2:                    # metadata: the hparams plugin's session info
                    plugin = _plugin_name(buf, vv)
                    hp = _hparams(buf, vv[0], vv[1]) if plugin == "hparams" else None
                    if hp:
                        value = ("hparams", hp)
            if plugin == "text" and tag is not None and tensor is not None:
                obj = _json_object(buf, tensor)
                key = tag.removesuffix("/text_summary")               # torch's add_text adds it
                value = ("hparams", {CONFIG_TEXT_KEYS.get(key, key): obj}) if obj else None
            if tag is not None and value is not None:
                out.append((tag, value[0], value[1]))
            elif tag is not None and (other or plugin):   # an image, a text note: said, not dropped in silence
                out.append((tag.removesuffix("/text_summary"), "skipped", other or ("text" if plugin == "text" else plugin)))
    return wall, step, out


# --- framing ---------------------------------------------------------------------------------------

MAX_RECORD_BYTES = 1 << 31   # TensorFlow's protobufs stop at 2 GB: a longer record is damage


def _frame(data: bytes, path) -> tuple[np.ndarray, np.ndarray, bool]:
    """Offsets and lengths of every record's data; whether the last record is cut short.

    Logs repeat: the same tags, in the same order, with the same record lengths. After a few
    records read one by one, a repeating pattern of lengths is checked ahead for thousands of
    records at once (the length fields are read as arrays). A wrong guess costs nothing: every
    length is verified against the file, and every record's CRCs are checked afterwards.
    """
    offsets, lengths = [], []
    pos, n = 0, len(data)
    unpack = struct.Struct("<Q").unpack_from
    truncated = False
    while pos < n and not truncated:
        o, ln = [], []
        for _ in range(32):
            if pos >= n:
                break
            if pos + 12 > n:
                truncated = True
                break
            length = unpack(data, pos)[0]
            if pos + 16 + length > n:
                if masked_crc(data[pos:pos + 8]) != struct.unpack_from("<I", data, pos + 8)[0]:
                    # a damaged length field, not a record cut short by a writer that stopped
                    raise EventFileError(f"{path}: record at byte {pos}: length CRC mismatch; the file is damaged "
                                         "or not a TensorBoard event file")
                if length > MAX_RECORD_BYTES:   # no writer's: read as a cut tail, it dropped every record after it
                    raise EventFileError(f"{path}: record at byte {pos} claims {length:,} bytes; the file is damaged")
                truncated = True
                break
            o.append(pos)
            ln.append(length)
            pos += 16 + length
        offsets.append(np.asarray(o, np.int64))
        lengths.append(np.asarray(ln, np.int64))
        if truncated or pos >= n or len(ln) < 2:
            continue
        period = next((p for p in range(1, 9) if len(ln) >= 2 * p and ln[-p:] == ln[-2 * p:-p]), None)
        if period is None:
            continue
        pattern = np.asarray(ln[-period:], np.int64)
        rel = np.concatenate([[0], np.cumsum(pattern + 16)[:-1]])
        block = int(np.sum(pattern + 16))
        chunk = 1024
        while True:
            count = min((n - pos) // block, chunk)
            if count <= 0:
                break
            cand = pos + np.arange(count, dtype=np.int64)[:, None] * block + rel[None, :]
            ok = np.ones(count, bool)
            for k in range(period):   # each position of the pattern: a strided view of its length fields
                flat = np.frombuffer(data, "<u8", count=(n - pos - int(rel[k])) // 8, offset=pos + int(rel[k]))
                ok &= np.lib.stride_tricks.as_strided(flat, (count,), (block,), writeable=False) == pattern[k]
            good = count if ok.all() else int(np.argmin(ok))
            if good:
                offsets.append(cand[:good].ravel())
                lengths.append(np.tile(pattern, good))
                pos += good * block
            if good < count:
                break
            chunk = min(chunk * 4, 1 << 20)
    if not offsets:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), truncated
    return np.concatenate(offsets), np.concatenate(lengths), truncated


class _Records:
    """``n`` records of ``length`` data bytes: record i starts at ``base[first + i * stride]``.

    A view over the file when the records sit at a constant stride (a log repeating the same
    tags in the same order: no bytes are copied), else a gathered copy (``stride = length``).
    ``starts`` are the records' positions in the file (for file order and error messages).
    """

    def __init__(self, base: np.ndarray, first: int, stride: int, n: int, length: int, starts: np.ndarray):
        self.base, self.first, self.stride, self.n, self.length, self.starts = base, first, stride, n, length, starts

    def column(self, offset: int, dtype: str) -> np.ndarray:
        """The ``dtype`` value at byte ``offset`` of every record (a strided view, unaligned ok)."""
        item = np.dtype(dtype).itemsize
        count = (len(self.base) - self.first - offset) // item
        flat = np.frombuffer(self.base, dtype, count=count, offset=self.first + offset)
        return np.lib.stride_tricks.as_strided(flat, shape=(self.n,), strides=(self.stride,), writeable=False)

    def take(self, rows: np.ndarray) -> "_Records":
        return _gather(self.base, self.first + rows * self.stride, self.length, self.starts[rows])


_GATHER_BYTES = 64 << 20     # copies of irregular records are made in pieces of this size


def _gather(arr, positions, length, starts) -> _Records:
    """Copies of whole records (length field and CRCs included) at data ``positions``."""
    rows = np.lib.stride_tricks.sliding_window_view(arr, length + 16)[positions - 12]
    return _Records(np.ascontiguousarray(rows).reshape(-1), 12, length + 16, len(positions), length, starts)


_CHUNK = 1 << 15             # records per piece of the column loops (temporaries stay in the cache)
MIN_STRIDED_RUN = 64         # shorter runs of equally spaced records are gathered with the rest


def _record_sets(arr, positions: np.ndarray, length: int, starts: np.ndarray) -> list:
    """``_Records`` covering every position: views for long runs of a constant stride, gathered
    copies (in pieces of bounded size) for the rest."""
    n = len(positions)
    sets, taken = [], np.zeros(n, bool)
    if n >= MIN_STRIDED_RUN:
        d = np.diff(positions)
        edges = np.flatnonzero(d[1:] != d[:-1]) + 1
        for a, b in zip(np.r_[0, edges], np.r_[edges, len(d)]):   # d[a:b] equal: positions a..b
            a = int(a) + int(taken[a])
            if b - a + 1 >= MIN_STRIDED_RUN and d[a] > 0:
                sets.append(_Records(arr, int(positions[a]), int(d[a]), int(b) - a + 1, length, starts[a:b + 1]))
                taken[a:b + 1] = True
    rest = np.flatnonzero(~taken)
    per = max(1, _GATHER_BYTES // max(length, 1))
    for i in range(0, len(rest), per):
        sel = rest[i:i + per]
        sets.append(_gather(arr, positions[sel], length, starts[sel]))
    return sets


BLOCK = 1024      # longer records are checked a block at a time (_block_registers)


@functools.lru_cache(maxsize=32)
def _position_tables(length: int):
    """CRC-32C is linear: the register after ``length`` bytes is ``const`` xor one table entry
    per byte position (``T[j][b]`` = byte b at position j pushed through the bytes after it).
    Pairs of positions share a 65536-entry table when that stays small (two bytes per lookup)."""
    t = np.empty((length, 256), np.uint32)
    if length:
        t[length - 1] = _TABLE
        for j in range(length - 2, -1, -1):
            t[j] = _TABLE[t[j + 1] & 0xFF] ^ (t[j + 1] >> np.uint32(8))
    reg = np.uint32(0xFFFFFFFF)
    for _ in range(length):
        reg = _TABLE[reg & 0xFF] ^ (reg >> np.uint32(8))
    pairs = None
    if 2 <= length <= 128:
        lo = np.arange(65536) & 0xFF
        hi = np.arange(65536) >> 8
        pairs = [t[j][lo] ^ t[j + 1][hi] for j in range(0, length - 1, 2)]
    return t, pairs, reg


def _masked_crcs(rec: _Records, at: int, length: int, pairs_from: int = 4096) -> np.ndarray:
    """Masked CRC-32C of the ``length`` bytes at offset ``at`` of every record."""
    if length > BLOCK:
        return _masked(_block_registers(rec, at, length) ^ np.uint32(0xFFFFFFFF))
    t, pairs, reg = _position_tables(length)
    use_pairs = pairs is not None and rec.n >= pairs_from    # big groups: two bytes per table lookup
    cols = [(table, rec.column(at + 2 * k, "<u2")) for k, table in enumerate(pairs)] if use_pairs else []
    cols += [(t[j], rec.column(at + j, "u1")) for j in range(2 * len(cols), length)]
    crc = np.full(rec.n, reg, np.uint32)
    for a in range(0, rec.n, _CHUNK):        # in pieces that stay in the cache
        part = crc[a:a + _CHUNK]
        for table, col in cols:
            part ^= table[col[a:a + _CHUNK]]
    return _masked(crc ^ np.uint32(0xFFFFFFFF))


def _masked(crc: np.ndarray) -> np.ndarray:
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)


def _block_registers(rec: _Records, at: int, length: int) -> np.ndarray:
    """The CRC-32C register after the ``length`` bytes at ``at`` of every record, ``BLOCK``
    bytes at a time: each block's own register from BLOCK's position tables (vectorised over
    records and blocks), chained through a shift over BLOCK zero bytes. Position tables of the
    whole length took 1 KB a byte: a 512x512 image asked for 1.9 GB, a 10 MB text summary never
    finished."""
    m, rest = divmod(length, BLOCK)
    flat = np.frombuffer(rec.base, np.uint8, offset=rec.first + at)
    blocks = np.lib.stride_tricks.as_strided(flat, shape=(rec.n, m, BLOCK), strides=(rec.stride, BLOCK, 1),
                                             writeable=False)
    t = _position_tables(BLOCK)[0]
    own = np.zeros((rec.n, m), np.uint32)
    for j in range(BLOCK):
        own ^= t[j][blocks[:, :, j]]
    shift = _shift_tables(BLOCK)
    reg = np.full(rec.n, 0xFFFFFFFF, np.uint32)
    for i in range(m):
        reg = _shifted(reg, shift) ^ own[:, i]
    if rest:
        t = _position_tables(rest)[0]
        tail = np.zeros(rec.n, np.uint32)
        for j in range(rest):
            tail ^= t[j][rec.column(at + m * BLOCK + j, "u1")]
        reg = _shifted(reg, _shift_tables(rest)) ^ tail
    return reg


@functools.lru_cache(maxsize=32)
def _shift_tables(n: int) -> np.ndarray:
    """(4, 256): byte k of a register, pushed through ``n`` zero bytes (CRC-32C is linear)."""
    reg = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]).astype(np.uint32)
    for _ in range(n):
        reg = _TABLE[reg & 0xFF] ^ (reg >> np.uint32(8))
    return reg


def _shifted(reg: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return (shift[0][reg & 0xFF] ^ shift[1][(reg >> np.uint32(8)) & 0xFF] ^ shift[2][(reg >> np.uint32(16)) & 0xFF]
            ^ shift[3][reg >> np.uint32(24)])


def _damaged(rec: _Records) -> tuple[np.ndarray, str]:
    """Indices of the records of one length whose CRCs fail, and what failed (``rec`` points at
    the data; the length field and its CRC precede it, the data CRC follows)."""
    want_len = masked_crc(struct.pack("<Q", rec.length))
    bad = np.flatnonzero((rec.column(-4, "<u4") != want_len) | (rec.column(-12, "<u8") != rec.length))
    if len(bad):
        return bad, "length CRC mismatch"
    return np.flatnonzero(_masked_crcs(rec, 0, rec.length) != rec.column(rec.length, "<u4")), "data CRC mismatch"


# --- fast path for scalar events --------------------------------------------------------------------

def _scalar_template(buf: bytes):
    """Byte layout of a simple-value scalar event, or None when it is anything else.

    Returns (tag, wall_pos, step_pos, step_len, value_pos): positions inside the record data.
    """
    wall_pos = step_pos = step_len = None
    summary = None
    try:
        for num, wt, v, start in _fields(buf):
            if num == 1 and wt == 1:
                wall_pos = start
            elif num == 2 and wt == 0:
                step_pos = start
                step_len = _varint(buf, start)[1] - start
            elif num == 5 and wt == 2 and summary is None:
                summary = v
            else:
                return None
        if summary is None or wall_pos is None:
            return None
        values = list(_fields(buf, *summary))
        if len(values) != 1 or values[0][0] != 1:
            return None
        tag, value_pos = None, None
        for vn, vwt, vv, start in _fields(buf, *values[0][2]):
            if vn == 1 and vwt == 2:
                tag = bytes(buf[vv[0]:vv[1]]).decode("utf-8", "replace")
            elif vn == 2 and vwt == 5:
                value_pos = start
            else:
                return None
    except (EventFileError, IndexError):
        return None
    if tag is None or value_pos is None:
        return None
    return tag, wall_pos, step_pos, step_len or 0, value_pos


def _template_match(rec: _Records, ref: bytes, variable: np.ndarray) -> np.ndarray:
    """Which records equal ``ref`` on every byte not marked ``variable``: eight bytes at a time."""
    L = rec.length
    refa = np.frombuffer(ref, np.uint8)
    checks = []    # (column, mask or None, wanted value)
    for at in range(0, L - L % 8, 8):
        mask = np.frombuffer(np.where(variable[at:at + 8], 0, 0xFF).astype(np.uint8).tobytes(), "<u8")[0]
        if mask:
            checks.append((rec.column(at, "<u8"), mask, np.frombuffer(refa[at:at + 8].tobytes(), "<u8")[0] & mask))
    checks += [(rec.column(at, "u1"), None, refa[at]) for at in range(L - L % 8, L) if not variable[at]]
    ok = np.ones(rec.n, bool)
    for a in range(0, rec.n, _CHUNK):        # in pieces that stay in the cache
        part = ok[a:a + _CHUNK]
        for col, mask, want in checks:
            c = col[a:a + _CHUNK]
            part &= ((c & mask) if mask is not None else c) == want
    return ok


def _decode_group(rec: _Records, data, out: EventData, slow: list):
    """Decode records of one length: template matches as arrays, the rest onto ``slow``."""
    length = rec.length
    while rec.n:
        first = int(rec.starts[0])
        tpl = _scalar_template(data[first:first + length])
        if tpl is None:
            slow.append(first)
            rec = rec.take(np.arange(1, rec.n))
            continue
        tag, wall_pos, step_pos, step_len, value_pos = tpl
        variable = np.zeros(length, bool)
        variable[wall_pos:wall_pos + 8] = True
        variable[value_pos:value_pos + 4] = True
        if step_pos is not None:
            variable[step_pos:step_pos + step_len] = True
        match = _template_match(rec, data[first:first + length], variable)
        steps = np.zeros(rec.n, np.int64)
        if step_pos is not None and step_len:
            for i in range(step_len):   # a varint of exactly step_len bytes: continuation bits 1..1 0
                b = rec.column(step_pos + i, "u1")
                match &= ((b & 0x80) != 0) if i < step_len - 1 else ((b & 0x80) == 0)
                steps |= (b.astype(np.int64) & 0x7F) << (7 * i)
        hit = np.flatnonzero(match)
        everything = len(hit) == rec.n
        pick = (lambda a: a) if everything else (lambda a: a[hit])
        wall = pick(rec.column(wall_pos, "<f8")).astype(np.float64)
        value = pick(rec.column(value_pos, "<f4")).astype(np.float64)
        out.scalars.setdefault(tag, []).append((pick(rec.starts), pick(steps), value, wall))
        if everything:
            break
        rec = rec.take(np.flatnonzero(~match))


def _say_damaged(path, damaged: list, records: int) -> None:
    """Every record damaged: not an event file, refused. Some: TensorBoard shows the others, and
    so do we (one flipped byte in record 21 of 50 refused the whole log), with a warning."""
    at, why = damaged[0]
    if len(damaged) == records:
        raise EventFileError(f"{path}: record at byte {at}: {why}; the file is damaged or not a TensorBoard "
                             "event file")
    warnings.warn(f"{path}: {len(damaged)} damaged record(s) skipped (the first at byte {at}: {why}); the "
                  f"other {records - len(damaged)} read", stacklevel=3)


def read_event_file(path, progress=None) -> EventData:
    """Every scalar and histogram in one event file, CRC-checked: damaged records are skipped
    with a warning; EventFileError when nothing in it is sound (or its framing is)."""
    path = Path(path)
    data = path.read_bytes()
    arr = np.frombuffer(data, np.uint8)
    offsets, lengths, truncated = _frame(data, path)
    out = EventData(records=len(offsets), corrupt_tail=truncated)
    if not len(offsets):
        if truncated or data:
            raise EventFileError(f"{path}: not a TensorBoard event file (no complete record)")
        return out
    slow: list[int] = []
    damaged = []       # (byte, why) of each record whose CRCs fail: skipped, the sound ones read
    groups = np.unique(lengths)
    for i, length in enumerate(groups):
        starts = offsets[lengths == length] + 12
        for rec in _record_sets(arr, starts, int(length), starts):
            bad, why = _damaged(rec)
            if len(bad):
                damaged += [(int(rec.starts[j]) - 12, why) for j in bad]
                rec = rec.take(np.setdiff1d(np.arange(rec.n), bad))
            _decode_group(rec, data, out, slow)
        if progress is not None:
            progress(i + 1, len(groups))
    if damaged:
        _say_damaged(path, sorted(damaged), out.records)
    extra: dict[str, list] = {}
    undecoded = []     # (byte, why): sound CRCs around an event the parser cannot read
    for start in sorted(slow):
        length = struct.unpack_from("<Q", data, start - 12)[0]
        try:
            wall, step, items = parse_event(data, start, start + length)
        except EventFileError as exc:     # one malformed event (another tool's summary): not the whole log
            undecoded.append((start - 12, str(exc)))
            continue
        for tag, kind, value in items:
            if kind == "scalar":
                extra.setdefault(tag, []).append((start, step, value, wall))
            elif kind == "hparams":
                out.hparams.update(value)
            elif kind == "skipped":
                counts = out.skipped.setdefault(value, {})
                counts[tag] = counts.get(tag, 0) + 1
            else:
                out.histograms.setdefault(tag, []).append(value)
    if undecoded:
        at, why = undecoded[0]
        warnings.warn(f"{path}: {len(undecoded)} event(s) could not be decoded and were skipped (the first at byte "
                      f"{at}: {why})", stacklevel=2)
    for tag, rows in extra.items():
        pos, st, val, wall = (np.asarray(c) for c in zip(*rows))
        out.scalars.setdefault(tag, []).append((pos.astype(np.int64), st.astype(np.int64),
                                                val.astype(np.float64), wall.astype(np.float64)))
    # Merge each tag's pieces back into file order.
    for tag, pieces in list(out.scalars.items()):
        pieces = sorted((p for p in pieces if len(p[0])), key=lambda p: int(p[0][0]))
        if not pieces:
            del out.scalars[tag]
            continue
        pos = np.concatenate([p[0] for p in pieces])
        if np.all(pos[1:] > pos[:-1]):       # pieces one after another (steps grew a varint byte)
            out.scalars[tag] = tuple(np.concatenate([p[k] for p in pieces]) for k in (1, 2, 3))
            continue
        order = np.argsort(pos, kind="stable")
        out.scalars[tag] = tuple(np.concatenate([p[k] for p in pieces])[order] for k in (1, 2, 3))
    return out


def event_files(src, recursive: bool = True) -> list[Path]:
    """The event files of a log directory (recursively, or only its own, in name order), or
    [src] for a file."""
    p = Path(src)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{src} does not exist")
    files = sorted(f for f in (p.rglob("*") if recursive else p.iterdir()) if f.is_file() and "tfevents" in f.name)
    if not files:
        raise EventFileError(f"{src}: no TensorBoard event files (*tfevents*) in this directory")
    return files


def is_tensorboard_source(src) -> bool:
    p = Path(src)
    if p.is_file():
        return "tfevents" in p.name
    return p.is_dir() and any("tfevents" in f.name for f in p.rglob("*") if f.is_file())
