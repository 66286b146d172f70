"""The trainspect run-file format: names, dtypes, schema version and open rules.

This module is the only part of ``recorder`` that ``analysis`` may import. It must stay
free of torch (the viewer machine may have none) and of Qt. The layout is documented for
humans in ``FORMAT.md`` beside this file; keep the two in step.

Every group, dataset and attribute is created before SWMR mode starts; afterwards the
writer only resizes, writes, flushes and rewrites fixed-size attributes in place
(HDF5 accepts new objects in SWMR mode but live readers never see them).
"""
from __future__ import annotations

import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
FORMAT_MAGIC = "trainspect-run"
MAX_STEP = 1 << 53   # steps are stored as float64: exact below 2**53 (log() refuses larger ones)

# ---------------------------------------------------------------- header and live state
# Root attributes, written once before SWMR starts (readers cache root attributes, so
# anything that changes while the run is live lives in the small datasets below).
ATTR_MAGIC = "trainspect_format"          # fixed-length bytes, == FORMAT_MAGIC
ATTR_SCHEMA = "schema_version"            # int64

# Live state: fixed-shape chunked datasets rewritten in place on every flush; readers call
# refresh() on them (measured: a rewritten root attribute is never seen by an open reader).
STATE = "state/values"                    # float64 (STATE_LEN,), indices below
STATE_HEARTBEAT = 0                       # unix time of the last completed flush
STATE_LAST_STEP = 1                       # largest step written so far (-1 = none)
STATE_END_TIME = 2                        # unix time of close, NaN while running
STATE_FLUSH_EVERY = 3                     # seconds between flushes (readers judge staleness)
STATE_DROPPED = 4                         # records the writer had to drop (queue full)
STATE_START_TIME = 5                      # unix time the run began (file creation; an imported log's first event)
STATE_SESSIONS = 6                        # writer sessions (resume=True adds one); NaN = 1
# 1 = recording stopped because the writer failed (disk full, I/O error) while the training went
# on; NaN otherwise. status stays "crashed" beside it, so readers that predate it read such a
# run as they always did; newer ones say "recording stopped" (FORMAT.md, *Failures*).
STATE_WRITER_FAILED = 7
STATE_LEN = 8
STATUS = "state/status"                   # S16 (1,): running / finished / crashed
ERROR = "state/error"                     # S256 (1,): last writer/recorder error ("" = none)

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_CRASHED = "crashed"
STATUS_LEN = 16
# state/error of the writer's own refusals (writer_thread._check_space): a run file written
# before STATE_WRITER_FAILED existed is known by them to have stopped recording, not training.
WRITER_REFUSALS = ("OSError: disk almost full:", "OSError: file size limit (RLIMIT_FSIZE)")
ERROR_LEN = 256

def recording_stopped(status: str, error: str, writer_failed: float) -> bool:
    """Whether a run file's state says its recording stopped on a writer failure while the
    training went on (``writer_failed``: state/values[STATE_WRITER_FAILED])."""
    return status == STATUS_CRASHED and (writer_failed == 1.0 or error.startswith(WRITER_REFUSALS))


# Run metadata is JSON in a uint8 dataset written once before SWMR starts (no vlen strings).
META = "meta/json"
# meta["roles"]: metric names the user declared for each loss role (Recorder(roles=...)).
META_ROLES = "roles"
LOSS_ROLES = ("train", "val")
# meta["distributed"]: {rank, world_size, run_id, local_rank, rank0_file} of one rank's file.
META_DISTRIBUTED = "distributed"
# Config keys an importer adds (recorder/importers): where the run came from, and in what form.
# Its file's times are the import's; a TensorBoard log's rows keep their events' times.
CONFIG_IMPORTED_FROM = "imported_from"
CONFIG_IMPORT_FORMAT = "import_format"
IMPORT_FORMAT_TENSORBOARD = "tensorboard"
_RANK_FILE = re.compile(r"^(?P<stem>.+)\.rank(?P<rank>[0-9]+)$")


def rank_path(path, rank: int) -> Path:
    """Rank 0 keeps ``path``; rank k writes ``<stem>.rank<k><suffix>`` in the same folder."""
    path = Path(path)
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def split_rank_path(path) -> tuple[Path, int]:
    """The rank-0 path of a rank file and its rank: ``exp1.rank3.h5`` -> (``exp1.h5``, 3)."""
    path = Path(path)
    m = _RANK_FILE.match(path.stem)
    if m is None:
        return path, 0
    return path.with_name(m["stem"] + path.suffix), int(m["rank"])


def check_roles(roles) -> dict:
    """``roles`` as a plain dict; ValueError naming the problem for anything else."""
    if roles is None:
        return {}
    if not isinstance(roles, dict):
        raise TypeError(f"roles must be a dict like {{'val': 'my_metric'}}, got {type(roles).__name__}")
    out = {}
    for role, name in roles.items():
        if role not in LOSS_ROLES:
            raise ValueError(f"unknown loss role {role!r}; the roles are {', '.join(LOSS_ROLES)}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"roles[{role!r}] must be a metric name, got {name!r}")
        out[role] = name
    return out

# ---------------------------------------------------------------- scalar table
# One long table of rows (step, tag id, value, wall time) plus a growing tag-name table:
# a metric first seen mid-run needs no new HDF5 object, so live readers see it.
SCALAR_STEP = "scalars/step"      # int64  (N,)
SCALAR_TAG = "scalars/tag"        # int32  (N,)  index into TAG_NAMES
SCALAR_VALUE = "scalars/value"    # float64 (N,) stored as logged, NaN/Inf included
SCALAR_WALL = "scalars/wall"      # float64 (N,) unix time the value was logged
TAG_NAMES = "tags/name"           # S128   (T,)  UTF-8 metric names, T grows (S64 in older files)
TAG_LEN = 128
SCALAR_CHUNK = 16384
TAG_CHUNK = 256

# Reserved scalar names the recorder writes itself (from watch()).
SYS_PREFIX = "sys/"
SYS_LR = "sys/lr"                          # param group 0; further groups "sys/lr/1", "sys/lr/2", ...
SYS_GRAD_NORM = "sys/grad_norm"            # global L2 norm of all gradients as backward() left them
                                           # (before clipping; unscaled), every optimizer step
SYS_GRAD_NORM_POST_CLIP = "sys/grad_norm_post_clip"  # global norm the step applied, from the first step clipping changed it (absent: never clipped)
SYS_LOSS_SCALE = "sys/loss_scale"          # GradScaler's loss scale at each step (watch(..., scaler=))
SYS_AMP_SKIPPED = "sys/amp_skipped_step"   # 1 at steps the GradScaler skipped (inf/NaN gradients)
SYS_EVAL_MODE = "sys/eval_mode_step"       # 1 at optimizer steps whose forward ran in eval mode
SYS_NOGRAD_TRAIN_MODE = "sys/nograd_train_mode"  # forwards without grad while Dropout (1) / BatchNorm (2) train
SYS_GRAD_CARRIED = "sys/grad_carried"      # 1 at updates whose gradient still held the previous update's
SYS_INSTRUMENTS_OFF = "sys/instruments_off"  # 1 at the step where an instrument failed and all were switched off
SYS_NONFINITE_GRADS = "sys/nonfinite_grads"  # count of NaN/Inf gradient elements
SYS_STEP_TIME = "sys/step_time"            # seconds between consecutive optimizer steps, or log() steps without one (host clock)
SYS_DATA_WAIT = "sys/data_wait"            # seconds from an optimizer step to the next training forward (host clock)
SYS_CUDA_ALLOC = "sys/cuda_mem_allocated"  # bytes
SYS_CUDA_PEAK = "sys/cuda_mem_peak"        # bytes
SYS_INPUT_MEAN = "sys/input_mean"          # statistics of the model's first input tensor (scheduled)
SYS_INPUT_STD = "sys/input_std"
SYS_INPUT_MIN = "sys/input_min"
SYS_INPUT_MAX = "sys/input_max"
SYS_BATCH_SIZE = "sys/batch_size"          # first dimension of that input tensor (any dtype; scheduled)
SYS_INPUT_NUMEL = "sys/input_numel"        # elements of that input tensor (any dtype; scheduled): a token batch's B*T


# An LR range test run (recorder/lr_range.py): config key that marks it, and its own metrics.
LR_RANGE_CONFIG = "lr_range_test"
LR_RANGE_SMOOTHED = "lr_range/smoothed_loss"     # bias-corrected EMA of train/loss, every step
LR_RANGE_SUGGESTED = "lr_range/suggested_lr"     # logged once, at the last step
LR_RANGE_STEEPEST = "lr_range/steepest_lr"
LR_RANGE_MIN_LOSS = "lr_range/min_loss_lr"


def lr_tag(group: int) -> str:
    return SYS_LR if group == 0 else f"{SYS_LR}/{group}"


@dataclass(frozen=True)
class StatSpec:
    """How a statistic reads to a person: one place for every view (app, reports, CSV)."""
    name: str
    label: str                 # words for axis titles and menus
    unit: str = ""             # "" = dimensionless
    log: bool = False          # spans decades: draw on a log scale when the values allow it
    fraction: bool = False     # lies in [0, 1]: colour and axis ranges are fixed to it
    group: str = ""            # layer statistics: record group and field it is stored in
    field: str = ""


SCALAR_SPECS = {s.name: s for s in (
    StatSpec(SYS_LR, "learning rate", log=True),
    StatSpec(SYS_GRAD_NORM, "global gradient norm", log=True),
    StatSpec(SYS_NONFINITE_GRADS, "non-finite gradient elements", unit="count"),
    StatSpec(SYS_STEP_TIME, "step time", unit="s"),
    StatSpec(SYS_DATA_WAIT, "data-loader wait", unit="s"),
    StatSpec(SYS_CUDA_ALLOC, "CUDA memory allocated", unit="B"),
    StatSpec(SYS_CUDA_PEAK, "CUDA memory peak", unit="B"),
    StatSpec(SYS_INPUT_MEAN, "input mean"),
    StatSpec(SYS_INPUT_STD, "input std", log=True),
    StatSpec(SYS_INPUT_MIN, "input min"),
    StatSpec(SYS_INPUT_MAX, "input max"),
    StatSpec(SYS_BATCH_SIZE, "batch size", unit="count"),
    StatSpec(SYS_INPUT_NUMEL, "input elements", unit="count"),
    StatSpec(SYS_GRAD_CARRIED, "gradient carried over from the previous update", fraction=True),
)}


def is_sys(name: str) -> bool:
    """A series the recorder writes itself (not one the user logged)."""
    return name.startswith(SYS_PREFIX)


def lr_groups(names) -> list[str]:
    """The learning-rate series present, param group 0 first."""
    return [n for n in names if n == SYS_LR or n.startswith(SYS_LR + "/")]


def scalar_spec(name: str) -> StatSpec | None:
    """The spec of a recorder series ("sys/lr/2" reads as the learning rate); None for user metrics."""
    if name in SCALAR_SPECS:
        return SCALAR_SPECS[name]
    if name.startswith(SYS_LR + "/"):
        return SCALAR_SPECS[SYS_LR]
    return None


# ---------------------------------------------------------------- layer tables
# Fixed once watch() has seen the model. Layers are parameter tensors ("params") for
# gradient/weight statistics and leaf modules ("modules") for activation statistics.
NAME_LEN = 128
PARAM_NAME = "params/name"        # S128 (P,) e.g. b"encoder.0.weight"
PARAM_MODULE = "params/module"    # S128 (P,) owning module, e.g. b"encoder.0"
PARAM_SHAPE = "params/shape"      # S64  (P,) e.g. b"256x784"
PARAM_NUMEL = "params/numel"      # int64 (P,)
MODULE_NAME = "modules/name"      # S128 (M,) leaf modules, in model order
MODULE_TYPE = "modules/type"      # S64  (M,) class name, e.g. b"ReLU"

# Each record group has a "step" dataset (int64, (R,)) and per-layer datasets (R, L[, ...]).
# A reader takes R = the smallest length over the group's datasets: rows of a flush that
# was cut short are ignored, never half-read.
GRADS = "grads"                   # every optimizer step, L = P
GRAD_FIELDS = {"norm": "float32", "nonfinite": "int32"}

WEIGHTS = "weights"               # every `stats_every` steps, L = P
WEIGHT_FIELDS = {"norm": "float32", "update_norm": "float32", "update_ratio": "float32"}

ACTS = "acts"                     # every `stats_every` steps (training-mode forwards), L = M
ACT_FIELDS = {
    "mean": "float32",
    "std": "float32",
    "absmax": "float32",
    "frac_nonpos": "float32",     # fraction of output elements <= 0
    "dead_frac": "float32",       # fraction of units (features/channels) <= 0 for the whole batch
    "frac_saturated": "float32",  # sigmoid/tanh-family outputs: fraction within 1 % of the bounds;
                                  # other modules: fraction of |x| > 5 (DeepDiagnosis pre-activation rule)
}

HISTS = "hists"                   # every `hist_every` steps, L = P
HIST_BINS = 64
HIST_FIELDS = {
    "weight_counts": "int32",     # (R, P, HIST_BINS)
    "weight_range": "float32",    # (R, P, 2)  lower and upper edge of the bins
    "grad_counts": "int32",
    "grad_range": "float32",
}

SNAPS = "snaps"                   # every `snapshot_every` steps, L = S (matrices only)
SNAP_SIZE = 32                    # snapshots are block-averaged down to at most 32 x 32
SNAP_PARAM = "snaps/param"        # int32 (S,) index into params/ of each snapshot slot
SNAP_SHAPE = "snaps/shape"        # int32 (S, 2) rows, cols actually used (rest is NaN)
SNAP_FIELDS = {"weight": "float16"}  # (R, S, SNAP_SIZE, SNAP_SIZE)

RECORD_GROUPS = {
    GRADS: GRAD_FIELDS,
    WEIGHTS: WEIGHT_FIELDS,
    ACTS: ACT_FIELDS,
    HISTS: HIST_FIELDS,
    SNAPS: SNAP_FIELDS,
}
STEP_FIELD = "step"

# Layer statistics a reader exposes as [records x layers], with how they read.
LAYER_STAT_SPECS = {s.name: s for s in (
    StatSpec("grad_norm", "gradient norm", log=True, group=GRADS, field="norm"),
    StatSpec("grad_nonfinite", "non-finite gradients", unit="count", group=GRADS, field="nonfinite"),
    StatSpec("weight_norm", "weight norm", log=True, group=WEIGHTS, field="norm"),
    StatSpec("update_norm", "update norm", log=True, group=WEIGHTS, field="update_norm"),
    StatSpec("update_ratio", "update / weight ratio", log=True, group=WEIGHTS, field="update_ratio"),
    StatSpec("act_mean", "activation mean", group=ACTS, field="mean"),
    StatSpec("act_std", "activation std", log=True, group=ACTS, field="std"),
    StatSpec("act_absmax", "activation |max|", log=True, group=ACTS, field="absmax"),
    StatSpec("act_frac_nonpos", "fraction of outputs <= 0", fraction=True, group=ACTS, field="frac_nonpos"),
    StatSpec("act_dead_frac", "dead fraction", fraction=True, group=ACTS, field="dead_frac"),
    StatSpec("act_frac_saturated", "saturated fraction", fraction=True, group=ACTS, field="frac_saturated"),
)}
# public name -> (group, field): where each layer statistic is stored.
LAYER_STATS = {name: (s.group, s.field) for name, s in LAYER_STAT_SPECS.items()}

# Activations with a bounded output range, by class name: (low, high), or None where the
# module's own min_val/max_val say (Hardtanh, ReLU6). The recorder counts outputs within 1 %
# of the range from a bound as saturated; the advisor judges only these types by it.
# LogSigmoid is absent on purpose: its range is unbounded below, so "1 % of the range" has
# no meaning and its saturation column holds the |x| > 5 rule of unbounded activations.
BOUNDED_ACTIVATIONS = {
    "Sigmoid": (0.0, 1.0), "Hardsigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Softsign": (-1.0, 1.0),
    "Hardtanh": None, "ReLU6": None,
}
# Which layer table a record group is indexed by.
GROUP_LAYERS = {GRADS: "params", WEIGHTS: "params", ACTS: "modules", HISTS: "params", SNAPS: "snaps"}


def row_shape(group: str, field: str, n_layers: int) -> tuple[int, ...]:
    """Shape of one record (one row) of ``group/field`` for ``n_layers`` layers."""
    if group == HISTS:
        return (n_layers, HIST_BINS) if field.endswith("_counts") else (n_layers, 2)
    if group == SNAPS:
        return (n_layers, SNAP_SIZE, SNAP_SIZE)
    return (n_layers,)


def chunk_rows(row_bytes: int, target_bytes: int = 256 * 1024, max_rows: int = 4096) -> int:
    """Rows per chunk so a chunk is about ``target_bytes`` (fast appends, fast whole reads)."""
    return int(max(1, min(max_rows, target_bytes // max(1, row_bytes))))


# ---------------------------------------------------------------- segments (resume=True)
# One row per writer session of the file, appended when Recorder(..., resume=True) reopens it
# (before SWMR starts again); absent in a file written by one session. A point of a series
# written in one session is superseded when a later session wrote the same series at an equal or
# smaller step (latest_only): a script resumed from a checkpoint at step S logs S, S+1, ... again,
# and readers show the latest.
SEGMENTS = "segments/table"       # float64 (K, len(SEGMENT_COLUMNS))
SEGMENT_NOTES = "segments/note"   # S256 (K,): how the session before this one ended ("" for the first)
SEGMENT_COLUMNS = ("start_time",  # unix time the session opened the file
                   "first_step",  # smallest step of the session's first write; NaN until it wrote (informational)
                   "scalars", *RECORD_GROUPS)   # rows of each table written before the session
SEG_START_TIME = 0
SEG_FIRST_STEP = 1
# uint8 (N,): UTF-8 JSON, a list with one entry per session: {"config", "host", "versions"} that
# session's Recorder was given, or null (the first session's are meta/json's; a session resumed
# by an older trainspect left none). Rewritten whole at each resume, before SWMR starts.
SEGMENT_META = "segments/meta"
SEGMENT_META_KEYS = ("config", "host", "versions")


def segment_column(table: str) -> int:
    """Column of SEGMENTS holding the first row of ``table`` ("scalars" or a record group)."""
    return SEGMENT_COLUMNS.index(table)


def session_starts(segments: np.ndarray | None, table: str) -> np.ndarray | None:
    """First row of each writer session in ``table``; None for a run written in one session."""
    if segments is None or len(segments) < 2:
        return None
    return np.asarray(segments, dtype=np.float64)[:, segment_column(table)]


def row_sessions(starts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Session index of each row index in ``rows``."""
    return np.maximum(np.searchsorted(starts, rows, side="right") - 1, 0)


def later_cut(first: np.ndarray) -> np.ndarray:
    """``first[i, ...]``: smallest step session i wrote (inf if none) -> for each session the
    smallest step any *later* session wrote: its points at or after that step are superseded."""
    cut = np.full_like(first, np.inf, dtype=np.float64)
    for i in range(len(first) - 2, -1, -1):
        cut[i] = np.minimum(cut[i + 1], first[i + 1])
    return cut


def latest_only(sessions: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
    """Mask of one series' points that no later session superseded (None = all kept).

    The rule (FORMAT.md, *Segments*): a point of a series (a metric, or a layer record group)
    written in session i is superseded when a later session wrote the same series at a step
    <= the point's step. A script resumed from a checkpoint at step S logs S, S+1, ... again.
    """
    if len(steps) == 0 or sessions[0] == sessions[-1]:
        return None
    first = np.full(int(sessions.max()) + 1, np.inf)
    np.minimum.at(first, sessions, steps)
    keep = steps < later_cut(first)[sessions]
    return None if keep.all() else keep


# ---------------------------------------------------------------- writer lock and file names
# Shared with readers: recorder/claim.py takes the lock, `trainspect tail` looks for a newer run.
def lock_path(path) -> Path:
    """The sidecar a live writer holds an exclusive flock on: ``runs/.exp1.h5.lock``."""
    path = Path(path)
    return path.with_name(sidecar_name(path.name, ".lock"))


NAME_MAX = 255    # bytes of one file name (Linux, macOS)


def sidecar_name(name: str, suffix: str) -> str:
    """``.{name}{suffix}``, or for a name too long to take the extra bytes (a legal 250-byte run
    name was refused with "File name too long" for its lock), its head and a hash of the whole
    name: still one name per run file, the same in every process."""
    short = f".{name}{suffix}"
    if len(os.fsencode(short)) <= NAME_MAX:    # the bytes the file system sees (undecodable ones too)
        return short
    import hashlib

    raw = os.fsencode(name)
    digest = hashlib.sha1(raw).hexdigest()[:16]
    room = NAME_MAX - len(os.fsencode(f"..{digest}{suffix}"))
    return f".{os.fsdecode(raw[:room])}.{digest}{suffix}"


def is_locked(path) -> bool:
    """Whether a live writer holds the run file ``path`` (a shared probe, released at once)."""
    try:
        import fcntl
    except ImportError:   # Windows: no advisory locks
        return False
    fd = _sidecar_fd(path)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def writer_died(path) -> bool:
    """The writer of ``path`` ended without closing it (kill -9, the OOM killer): its lock
    sidecar is still there (a writer that closes deletes it) but nobody holds it. A file with
    no sidecar (an older trainspect, a copied run) says nothing either way: False."""
    try:
        is_file = stat.S_ISREG(os.stat(lock_path(path)).st_mode)
    except OSError:
        return False
    return is_file and not is_locked(path)


def writer_note(path) -> str:
    """Why a writer that failed left ``path`` unreadable (claim.WriterLock.release), or ""."""
    fd = _sidecar_fd(path)
    if fd is None:
        return ""
    try:
        text = os.read(fd, 1000).decode("utf-8", errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
    return "".join(text.splitlines(keepends=True)[1:2]).strip()


def _sidecar_fd(path):
    """A read descriptor of ``path``'s lock sidecar when it is a regular file, else None: a FIFO
    in its place (a hostile folder) blocked open() for ever, and with it diagnose of a run beside
    it (the GAN partner search asks whether a neighbour's writer died)."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def numbered(path, n: int) -> Path:
    """``exp1.h5`` -> ``exp1-2.h5`` (n = 2), the name a new run takes when the path holds one;
    n = 1 is ``path`` itself."""
    path = Path(path)
    return path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")


# ---------------------------------------------------------------- strings
def encode_name(name: str, length: int) -> bytes:
    """UTF-8 bytes of ``name``; raises ValueError if it does not fit ``length`` bytes."""
    raw = name.encode("utf-8")
    if not raw:
        raise ValueError("empty name")
    if len(raw) > length:
        raise ValueError(f"name longer than {length} bytes in UTF-8: {name[:40]!r}...")
    return raw


def decode_names(raw: np.ndarray) -> list[str]:
    # One decode of the joined names (NUL never occurs inside a UTF-8 sequence, so an invalid
    # name cannot spill into the next): 1 M names in a fraction of a second.
    items = np.asarray(raw).tolist()
    names = b"\0".join(items).decode("utf-8", errors="replace").split("\0")
    if len(names) != len(items):   # a name holding a NUL byte
        names = [b.decode("utf-8", errors="replace") for b in items]
    return names


def encode_meta(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, default=str).encode("utf-8"), dtype=np.uint8)


def decode_meta(raw: np.ndarray) -> dict:
    return json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode("utf-8"))


def attr_str(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tobytes()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).rstrip(b"\0").decode("utf-8", errors="replace")
    return str(value)


# ---------------------------------------------------------------- open rules
class RunFileError(Exception):
    """A file that cannot be read as a trainspect run. The message names file and problem."""


# How long a reader keeps retrying to open (or refresh) a run whose writer is at work: a torn
# read during a flush clears in milliseconds; a file that stopped changing is damaged, not torn.
LIVE_RETRY_S = 5.0
# Metadata read attempts of a SWMR reader. HDF5's default (100, with exponential back-off) turns
# one damaged checksum into an endless wait; 24 attempts end within ~20 ms (measured, HDF5 2.0).
SWMR_READ_ATTEMPTS = 24
QUIET_S = 1.0          # a file untouched this long is not being written: its errors are final

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Superblock v2/v3 "file consistency flags" (byte 11): set while a writer has the file open
# (and left set by a writer that was killed); cleared by a normal close.
SUPERBLOCK_WRITE_FLAGS = 0x01 | 0x04
SUPERBLOCK_SWMR_FLAG = 0x04


@dataclass(frozen=True)
class FileHead:
    """What the first bytes of a run file say, read without HDF5."""
    size: int
    mtime_ns: int
    writer_open: bool      # a writer holds it (live) or held it when killed (stale)
    swmr_writer: bool = False   # ... and had switched to SWMR (its layout is complete)


def read_head(path) -> FileHead:
    """Check ``path`` is a regular file that starts like a complete HDF5 file.

    Refuses FIFOs and devices before anything blocks on them (opened non-blocking, checked
    with fstat on the descriptor itself, so a swapped path cannot slip in between).
    """
    import errno
    import os
    import stat

    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise RunFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise RunFileError(f"{p}: is a directory, not a run file") from None
    except OSError as exc:
        raise RunFileError(f"{p}: {os_error_text(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise RunFileError(f"{p}: is a directory, not a run file")
        if not stat.S_ISREG(st.st_mode):
            raise RunFileError(f"{p}: not a regular file (a pipe, socket or device), not a run file")
        try:
            head = os.pread(fd, 64, 0)
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise RunFileError(f"{p}: is a directory, not a run file") from None
            raise RunFileError(f"{p}: {os_error_text(exc)}") from None
    finally:
        os.close(fd)
    if head[:8] != HDF5_SIGNATURE:
        raise RunFileError(f"{p}: not an HDF5 file (is it a trainspect run?)")
    if len(head) < 48:
        raise RunFileError(f"{p}: truncated run file ({st.st_size} bytes: only the start of an HDF5 header)")
    writer_open = swmr_writer = False
    if head[8] in (2, 3):     # libver="latest" superblock: what the recorder writes
        writer_open = bool(head[11] & SUPERBLOCK_WRITE_FLAGS)
        swmr_writer = bool(head[11] & SUPERBLOCK_SWMR_FLAG)
        size_of_offsets = head[9]
        if size_of_offsets in (4, 8):
            at = 12 + 2 * size_of_offsets
            eoa = int.from_bytes(head[at:at + size_of_offsets], "little")
            # A live writer keeps the file at least this long (measured: never shorter while writing).
            if st.st_size < eoa:
                raise RunFileError(f"{p}: truncated run file ({st.st_size} of {eoa} bytes; "
                                   + ("was it copied while being written?)" if writer_open else
                                      f"{NO_WRITER}: an interrupted copy?)"))
    return FileHead(st.st_size, st.st_mtime_ns, writer_open, swmr_writer)


# In the message of a truncated file that no writer holds: not a run starting, nothing to wait for.
NO_WRITER = "no writer has it open"


def writer_active(path) -> bool:
    """A writer holds ``path`` and changed it within QUIET_S: a failed read may be torn, not damage."""
    try:
        head = read_head(path)
    except RunFileError:
        return False
    return head.writer_open and time.time() - head.mtime_ns / 1e9 < QUIET_S


def os_error_text(exc: OSError) -> str:
    """An OSError in the user's words (EMFILE says what to do about it)."""
    import errno

    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return ("too many open files (the process limit, `ulimit -n`, is reached): "
                "close some runs or raise the limit")
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or str(exc)


def _set_read_attempts(fapl, attempts: int) -> None:
    """H5Pset_metadata_read_attempts, which h5py does not wrap: found in the HDF5 library
    h5py itself loaded. Without it (no symbol) the library default stays."""
    global _read_attempts_fn
    if _read_attempts_fn is None:
        _read_attempts_fn = False
        try:
            import ctypes

            from h5py import h5p

            fn = ctypes.CDLL(h5p.__file__).H5Pset_metadata_read_attempts
            fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
            _read_attempts_fn = fn
        except (OSError, AttributeError):
            pass
    if _read_attempts_fn:
        _read_attempts_fn(fapl.id, attempts)


_read_attempts_fn = None


def _h5_open(path: Path, swmr: bool, locking: bool = False):
    import h5py
    from h5py import h5f, h5p

    fapl = h5p.create(h5p.FILE_ACCESS)
    if not locking:
        fapl.set_file_locking(False, True)      # a live writer may hold the file (HDF5_USE_FILE_LOCKING still wins)
    fapl.set_libver_bounds(h5f.LIBVER_EARLIEST, h5f.LIBVER_LATEST)
    flags = h5f.ACC_RDONLY
    if swmr:
        flags |= h5f.ACC_SWMR_READ
        _set_read_attempts(fapl, SWMR_READ_ATTEMPTS)
    try:
        return h5py.File(h5f.open(os.fsencode(path), flags, fapl=fapl))
    except OSError as exc:
        # This process already has the file open with HDF5's default locking (a notebook's
        # h5py.File(path) beside open_run): HDF5 shares that handle only with matching flags.
        if locking or "locking flag values don't match" not in str(exc):
            raise
    return _h5_open(path, swmr, locking=True)


def h5_error_text(path, exc: BaseException) -> str:
    """An HDF5 open/read failure as one line naming the file."""
    msg = str(exc)
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return f"{path}: {os_error_text(exc)}"
    if "Too many open files" in msg or "errno = 24" in msg:
        return f"{path}: {os_error_text(OSError(24, msg))}"
    if "unable to lock file" in msg:
        return (f"{path}: locked by another process (HDF5 file locking); set "
                "HDF5_USE_FILE_LOCKING=FALSE to read a run that is being written")
    return f"{path}: damaged run file ({msg})"


def open_for_read(path, live_retry_s: float | None = None):
    """Open a run file for reading; RunFileError naming the file and the problem on failure.

    A closed run (finished, or crashed with the recorder closing it) opens plainly: a damaged
    byte then fails at once with a checksum error. Only a file a writer holds (or held when it
    was killed) opens in SWMR mode, with bounded metadata retries, and the open is retried
    for at most ``live_retry_s`` seconds while the writer is still changing the file.
    """
    p = Path(path)
    head = read_head(p)
    if not head.writer_open:
        f = _h5_open_or_raise(p)
    elif not head.swmr_writer:
        raise _starting(p)
    else:
        f = _open_live(p, head, LIVE_RETRY_S if live_retry_s is None else live_retry_s)
    try:
        check_header(f, p)
    except RunFileError:
        f.close()
        raise
    except Exception as exc:
        f.close()
        raise RunFileError(h5_error_text(p, exc)) from None
    return f


def _starting(p: Path) -> RunFileError:
    # Held for writing but not in SWMR mode: the writer has not created the layout yet (or was
    # stopped before it did). No reader can open such a file; tail waits for this message.
    if writer_died(p):   # nothing will come: say so, and tail stops waiting
        note = writer_note(p)
        why = f"it failed: {note}" if note else "it was killed within its first seconds, before watch()"
        return RunFileError(f"{p}: the writer stopped before it began recording ({why}): the file holds no data")
    if os.name == "posix" and not lock_path(p).exists():   # a recorder's lock sidecar exists before the file
        return RunFileError(f"{p}: open for writing by a program other than trainspect's recorder (an "
                            "h5py.File(path, 'r+') or 'a' left open?); close it there (`h5clear -s` if "
                            "that program was killed)")
    return RunFileError(f"{p}: run is starting (the writer has not begun recording yet, "
                        "or it stopped before it did); try again in a moment")


def _open_live(p: Path, head: FileHead, retry_s: float):
    deadline = time.monotonic() + retry_s
    delay = 0.02
    while True:
        try:
            return _h5_open(p, swmr=True)
        except Exception as exc:
            text = str(exc)
            if "Too many open files" in text or "errno = 24" in text:
                raise RunFileError(h5_error_text(p, exc)) from None
            time.sleep(delay)
            delay = min(0.25, delay * 2)
            now = read_head(p)
            if not now.writer_open:        # the writer closed it meanwhile: a plain open decides
                return _h5_open_or_raise(p)
            if not now.swmr_writer:        # a writer reopened it (resume) and has not begun yet
                raise _starting(p) from None
            changing = now != head or time.time() - now.mtime_ns / 1e9 < QUIET_S
            head = now
            if not changing:               # a file nobody writes: its error is damage, not a torn read
                raise RunFileError(h5_error_text(p, exc)) from None
            if time.monotonic() >= deadline:
                raise RunFileError(f"{p}: could not read the live run within {retry_s:.0f} s ({text})") from None


def _h5_open_or_raise(p: Path):
    try:
        return _h5_open(p, swmr=False)
    except Exception as exc:   # h5py raises OSError, RuntimeError, ValueError... on damage
        note = writer_note(p) if writer_died(p) else ""
        raise RunFileError(h5_error_text(p, exc) + (f"; its writer failed: {note}" if note else "")) from None


def check_header(f, path) -> int:
    """Raise RunFileError unless ``f`` is a trainspect run this code can read."""
    magic = f.attrs.get(ATTR_MAGIC)
    if magic is None or attr_str(magic) != FORMAT_MAGIC:
        raise RunFileError(f"{path}: HDF5 file but not a trainspect run (no {ATTR_MAGIC} attribute)")
    raw = f.attrs.get(ATTR_SCHEMA, -1)
    if np.ndim(raw) != 0 or np.asarray(raw).dtype.kind not in "iu":
        raise RunFileError(f"{path}: damaged run file (attribute {ATTR_SCHEMA} is {np.asarray(raw).dtype} "
                           f"{np.shape(raw)}, not an integer)")
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{path}: written with schema version {version}, this trainspect reads up to "
            f"{SCHEMA_VERSION}; upgrade trainspect"
        )
    if version < 1:
        raise RunFileError(f"{path}: invalid schema version {version}")
    return version


# Layer names are stored in NAME_LEN bytes (metric names in TAG_LEN): a longer one (deeply nested HF models, generated
# names) was cut there without a word, and a weight and its bias could end up with one name. A
# long name keeps its head and tail (the tail says .weight/.bias) around a hash of the whole.
_KEEP_TAIL = 40


def _cut_utf8(data: bytes, n: int, from_end: bool = False) -> bytes:
    """At most ``n`` bytes of ``data`` (its start, or its end), never splitting a character."""
    part = data[-n:] if from_end else data[:n]
    return part.decode("utf-8", errors="ignore").encode("utf-8")


def fit_name(name: str, length: int = NAME_LEN) -> str:
    data = name.encode("utf-8")
    if len(data) <= length:
        return name
    import hashlib
    mark = "~" + hashlib.sha1(data).hexdigest()[:8] + "~"
    tail = _cut_utf8(data, _KEEP_TAIL, from_end=True)
    head = _cut_utf8(data, length - len(tail) - len(mark))
    return head.decode("utf-8") + mark + tail.decode("utf-8")
