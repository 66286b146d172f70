"""The public ``Recorder``: log metrics and watch a model without slowing training.

Threads: the training thread only appends to in-memory queues (and, for device tensors,
launches a concatenation and an asynchronous copy every ``transfer_every`` steps); one
background thread (``writer_thread.WriterThread``) owns the HDF5 file.

Defaults of the schedules come from benchmarks/bench_recorder.py (see recorder/FORMAT.md).
"""
from __future__ import annotations

import atexit
import contextlib
import decimal
import functools
import inspect
import math
import numbers
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import claim
from . import format as fmt
from . import metadata
from . import ranks
from . import signals
from . import writer_thread as wt
from .warning import RecorderWarning
from .records.scalar import SCALAR_VALUES

DEFAULT_STATS_EVERY = 50       # weights/update norms, activation + input statistics
DEFAULT_DENSE_START = 100      # ... also on each of the first 100 steps (short runs, early failures)
DEFAULT_HIST_EVERY = 200      # weight and gradient histograms
DEFAULT_SNAPSHOT_EVERY = 200  # 32x32 weight snapshots
DEFAULT_TRANSFER_EVERY = 50    # steps of device statistics per device->host copy
TRANSFER_INTERVAL = 0.05       # ... or this many seconds, whichever comes first


_TAG_LOCK = threading.Lock()
_MAX_STEP = fmt.MAX_STEP   # steps travel as float64 to the writer thread: exact below 2**53
REPEAT_CALLS = 3            # log() calls at one step before names are counted (more: warned, once per name)
_MAX_CALL_SHAPES = 4096       # distinct name sets of log() calls remembered for the fast path
_MAX_NESTING = 8              # levels of {"train": {"loss": x}} flattened into "train/loss"




# recorder/ and integrations/ (which call it): the package's own frames
# (as imported and resolved: the package reached through a symlink names its frames by the link)
_LIBRARY_DIRS = tuple(dict.fromkeys(str(root / d) + os.sep for root in (Path(__file__).parent.parent,
                                                                         Path(__file__).resolve().parent.parent)
                                    for d in ("recorder", "integrations")))


# Frameworks whose callbacks create and feed the recorder (integrations/): their frames lie
# between the recorder's and the script's (trainer.fit() -> a callback -> Recorder()).
_FRAMEWORKS = ("lightning", "pytorch_lightning", "lightning_fabric", "transformers", "accelerate")


def _user_stacklevel(also=()) -> int:
    """The stacklevel of warnings.warn that names the script's line, not the recorder's or
    torch's (a warning from an optimizer or module hook pointed at torch/optim/optimizer.py).
    ``also``: names of more packages to look past (an integration's framework: Lightning)."""
    skip = _LIBRARY_DIRS
    for name in ("torch", *_FRAMEWORKS, *also):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip += (str(Path(module.__file__).parent) + os.sep, str(Path(module.__file__).resolve().parent) + os.sep)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    return level if frame is not None else 2


# How long watch()'s layer tables wait for the first training forward (see watch()): long
# enough for a DataLoader's first batch; meanwhile readers say "run is starting" and values
# logged are held in memory (flush(), close() or a device transfer start the file at once).
SHARED_CALLS_WAIT = 10.0


def _compiled(model) -> bool:
    """A torch.compile'd model (or one holding one): no leaf hooks, no activation records."""
    return any(type(m).__name__ == "OptimizedModule" and hasattr(m, "_orig_mod") for m in model.modules())


def _has_lazy_parameters(model) -> bool:
    from torch.nn.parameter import is_lazy

    return any(is_lazy(p) for p in model.parameters())


def _nonzero_rank() -> bool:
    info = ranks.rank_and_world()
    return info is not None and info[0] != 0


def _exit_reason(exc) -> str:
    """What state/error says about an exception that ended the run."""
    if isinstance(exc, KeyboardInterrupt):
        # Ctrl-C: the user stopped the run; the data up to here is complete.
        return "KeyboardInterrupt: stopped by the user"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


CLOSE_TIMEOUT = 60.0   # close() waits this long for the writer thread; a stuck disk must not hang the exit


def _clean_exit(exc) -> bool:
    """``sys.exit()`` / ``sys.exit(0)`` (early stopping): the run ended the way its author meant."""
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


def _close_at_exit(ref) -> None:
    rec = ref()
    if rec is not None:
        # The interpreter sets sys.last_value when the script died of an uncaught exception.
        exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        if exc is not None:
            rec._end_error = _exit_reason(exc)
        rec.close(status=fmt.STATUS_CRASHED if exc is not None else fmt.STATUS_FINISHED)


_RECORDER_DIR = str(Path(__file__).parent)   # as co_filename spells it (not resolved)

# Open Recorders of this process by the path they were asked for (absolute) and rank: a notebook
# cell run again makes a new Recorder while the last one still holds the file and its hooks.
_OPEN: dict = {}


# Open Recorders watching each model. lr_range_test() pauses them during its sweep: called
# inside a run, the run counted the sweep's steps as its own (its losses landed 100 steps late).
_WATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# Every Recorder of this process. A forked child (a DataLoader worker, a multiprocessing pool
# started with fork) inherits copies of them: they must not close, flush or free the parent's
# run (a child's Recorder(path, resume=True) closed the parent's copy, unlinked its lock and
# resumed the live file: every reader then refused it as damaged).
_ALL: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for rec in list(_ALL):
        rec._left_in_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def watchers_paused(model):
    """While inside, the open Recorders watching ``model`` record nothing and count no step."""
    try:
        refs = list(_WATCHERS.get(model, ()))
    except TypeError:      # a model that takes no weak reference: none was registered
        refs = []
    paused = [r for r in (ref() for ref in refs) if r is not None and r._instruments is not None
              and not r._instruments.w.hooks.paused]
    for r in paused:
        r._instruments.pause()
    try:
        yield
    finally:
        for r in paused:
            if r._instruments is not None:
                r._instruments.resume()


def _whole_step(step):
    """A step given as a whole number in another type: a float like 7.0 (an epoch counter kept
    as float), or a one-element integer tensor on the CPU (a step counter kept as a tensor);
    None otherwise. A GPU tensor is not read: that would sync the device."""
    if isinstance(step, float) and step.is_integer():
        return int(step)
    if type(step).__module__.startswith("torch") and getattr(step, "is_cpu", False) and step.numel() == 1:
        import torch  # loaded already: this is one of its tensors
        if step.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
            return int(step.item())
    return None


def _run_file(path: str, name) -> str:
    """The run file a path names. TensorBoard's habit, a folder (``runs/exp1/``), or a name
    without a suffix (``runs/exp1``) gave a file that ``trainspect open runs/`` did not list
    (it lists ``*.h5``): a folder gets ``<name>.h5`` inside it, a bare name ``.h5``."""
    text = os.fspath(path)
    if os.path.isdir(text) or text.endswith(("/", os.sep)):
        stem = str(name) if name is not None and str(name).strip() else "run"
        return os.path.join(text, "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) + ".h5")
    return text + ".h5" if not os.path.splitext(os.path.basename(text))[1] else text


def _close_earlier_watchers(model, new) -> None:
    """Close the open Recorders of this process that watch ``model`` (a notebook cell run
    again with a new path: the first run went on recording every step of the second, 'live'
    for ever). Kept: one inside its ``with`` block (in use), one paused by lr_range_test, one
    a framework integration manages (two Lightning loggers of one fit watch the same model)."""
    try:
        refs = list(_WATCHERS.get(model, ()))
    except TypeError:      # a model that takes no weak reference: none was registered
        return
    for earlier in (ref() for ref in refs):
        if (earlier is None or earlier is new or earlier._closed or earlier._in_with or earlier._managed
                or earlier._instruments is None or earlier._instruments.w.hooks.paused):
            continue
        warnings.warn(f"trainspect: closed the earlier Recorder of this process writing {earlier.path}, which "
                      f"watched the same {type(model).__name__} (a notebook cell run again?); end a run with "
                      "rec.close() or `with Recorder(...)`", RecorderWarning, stacklevel=3)
        earlier.close()


def _close_earlier(key) -> None:
    """Close the Recorder of this process made for the same path and rank that is still open
    (W&B finishes the previous run in a notebook alike): its lock refused the new one
    (RunFileInUse) and its hooks would record the model twice. One inside its ``with`` block is
    in use: the new one is refused as before."""
    ref = _OPEN.get(key)
    earlier = ref() if ref is not None else None
    if earlier is None or earlier._closed or earlier._in_with:
        return
    warnings.warn(f"trainspect: closed the earlier Recorder of this process still writing {earlier.path} "
                  "(a notebook cell run again?); end a run with rec.close() or `with Recorder(...)`",
                  RecorderWarning, stacklevel=3)
    earlier.close()


def _inside_recorder(frame) -> bool:
    """Whether ``frame`` (where a signal interrupted the main thread) is recorder code."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_RECORDER_DIR):
            return True
        frame = frame.f_back
    return False


# One real number each, though not registered as numbers.Real: float() gives its value.
_REAL_NOT_REGISTERED = (np.bool_, decimal.Decimal)
_STAGEABLE: frozenset = frozenset()   # torch dtypes the staging batch's torch.cat promotes; see _stageable


# log() called inside torch.compile'd code (a compiled train_step that logs its loss): dynamo
# traced into the recorder, broke the graph at each value read with a warning, and recompiled.
# Under tracing, log() hands the call to this compiler-disabled copy of itself: one clean graph
# break, the call runs eagerly. Set up when a Recorder is made with torch imported.
_IS_COMPILING = None
_EAGER_LOG = None


def _eager_log_setup() -> None:
    global _IS_COMPILING, _EAGER_LOG
    torch = sys.modules.get("torch")
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if _EAGER_LOG is None and disable is not None and is_compiling is not None:
        _EAGER_LOG = disable(Recorder.log)
        _IS_COMPILING = is_compiling


def _stageable(torch) -> frozenset:
    global _STAGEABLE
    _STAGEABLE = frozenset((torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool, torch.uint8,
                            torch.int8, torch.int16, torch.int32, torch.int64,
                            *(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))))
    return _STAGEABLE


def _finite(value) -> bool:
    if isinstance(value, decimal.Decimal):     # numpy cannot tell: Decimal("1e400") is finite
        return value.is_finite()
    try:
        return bool(np.isfinite(value))
    except Exception:  # noqa: BLE001
        return False


def _shown(name, most: int = 100) -> str:
    """``repr(name)`` for a message, cut after ``most`` characters (a 5,000-character name made
    a 5,000-character warning line)."""
    text = repr(name)
    return text if len(text) <= most else f"{text[:most]}… ({len(name)} characters)"


def _storable_name(name: str) -> str:
    """A valid UTF-8 spelling of a name that is not: undecodable bytes as ``\\xff``, lone
    surrogates as ``\\udcff`` (the same name always gives the same spelling)."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _finish(writer, lock, status: str) -> None:
    """Close the file, then free its name for the next writer (a dropped Recorder's finalizer)."""
    writer.close(status)
    _release(writer, lock)


def _release(writer, lock) -> None:
    """Free the run's name. A writer that failed and could not close the file (the disk filled
    before its first write) leaves its reason in the lock sidecar for readers."""
    note = None
    if writer.error is not None and writer.file.path.exists():
        try:
            if fmt.read_head(writer.file.path).writer_open:
                note = writer.error
        except Exception:  # noqa: BLE001 - an unreadable head: the file is left as it is
            note = writer.error
    lock.release(note)


def _release_when_done(writer, lock) -> None:
    writer.thread.join()
    _release(writer, lock)


def _steps_taken(optimizer) -> int:
    """The steps an optimizer has taken, from its per-parameter ``step`` counts (Adam, AdamW,
    RMSprop, Adagrad...; 0 for optimizers that keep none, such as SGD). A count held on a GPU
    is not read (that would wait for the device)."""
    try:
        counts = []
        for state in optimizer.state.values():
            step = state.get("step") if isinstance(state, dict) else None
            if isinstance(step, (int, float)):
                counts.append(int(step))
            elif getattr(step, "device", None) is not None and step.device.type == "cpu" and step.numel() == 1:
                counts.append(int(step.item()))
        return max(counts, default=0)
    except Exception:  # noqa: BLE001 - an optimizer's state of any shape: no count
        return 0


def _steps_unseen_before(optimizer) -> bool:
    """Whether an optimizer that keeps no step count (plain SGD) has stepped before watch():
    its parameters hold gradients or it holds state (SGD's momentum buffers). minGPT's Trainer
    makes its optimizer inside run(), so its callback after iteration 0 is the first place to
    watch: the loss it logs is iteration 0's, and the next optimizer step is step 1, not 0."""
    try:
        if any(state for state in optimizer.state.values()):
            return True
        return any(p.grad is not None for group in optimizer.param_groups for p in group["params"])
    except Exception:  # noqa: BLE001 - an optimizer of any shape: no sign
        return False


def _check_every(name: str, value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (0 or None = never), got {value!r}")
    return int(value)


class Recorder:
    """Record a training run into one crash-safe HDF5 file (see recorder/FORMAT.md).

    ``Recorder(path, name=None, config=None, *, resume=False, overwrite=False, flush_every=1.0,
    stats_every=50, hist_every=200, snapshot_every=200, transfer_every=50, strict=False,
    max_pending=262144, roles=None, all_ranks=True, dense_start=100)``

    ``dense_start``: the ``stats_every`` statistics (weights and updates, activations, inputs)
    are also taken on each of the first ``dense_start`` optimizer steps, so a short run or an
    early failure is always covered (0: only every ``stats_every`` steps).

    **An existing run is never replaced by default.** If ``path`` already holds a run, this
    run goes to the first free ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ... (one
    ``RecorderWarning`` names it; :attr:`path` is the file written). ``overwrite=True``
    replaces the old run (a reader still holding it keeps reading the old data).
    ``resume=True`` continues it in the same file, for scripts that restart from a checkpoint
    (a crashed, terminated or finished run; with no run there yet it starts one): a new
    segment begins, the status is live again, metric ids carry on and ``log(step=None)``
    continues after the last step written. A script resuming from a checkpoint at step S logs
    S, S+1, ... again: ``set_step(S)`` after ``Recorder(resume=True)`` numbers the recorder's own
    records from S too (``log(step=...)`` alone moves only the logged values, with a warning):
    rows the earlier session wrote from step S on are superseded and readers show the new ones
    (FORMAT.md, *Segments*). ``watch()`` of
    the same model continues the per-layer records; a different model gets a warning and
    no per-layer records in this segment.

    **One writer per file.** The recorder holds an exclusive lock on its file for the life of
    the run (``.<file name>.lock`` beside it, released at close or when the process dies). A
    second ``Recorder`` on a path another writer holds is recorded to the next free name
    (``exp1-2.h5``), as when the path holds a finished run, and one warning names both: two
    scripts launched at once on one path both run and both are recorded. With ``resume=True``
    or ``overwrite=True`` (which ask for that very file), and for a rank of a distributed run
    (the ranks agree on a name without talking), it raises
    :class:`~trainspect.recorder.claim.RunFileInUse` (an ``OSError``) here, whatever ``strict``
    says: nothing has been trained yet, and two writers would corrupt the run.

    ``roles`` names the losses when their names follow no convention the advisor knows:
    ``roles={"train": "ce", "val": "my_metric"}``.

    The file is created here: a path that cannot be created raises ``OSError`` at once
    (before training starts). Later failures (disk full, I/O errors) produce one
    ``RecorderWarning`` and recording stops; training is never interrupted.

    SIGTERM and SIGHUP (preemption, time-out) while the recorder is open: everything logged is
    flushed and the run is marked ``terminated (SIGTERM) at step N``, then the handler installed
    before (or the default action) runs; see recorder/signals.py. A run file deleted while being
    written is saved back at close (recorder/unlinked.py).

    ``log()``, ``watch()``, ``flush()`` and ``close()`` are meant to be called from one thread
    (the training loop); the file itself is written by a background thread.

    Distributed jobs (``RANK``/``WORLD_SIZE`` set, or ``torch.distributed`` initialised):
    every rank records. Rank 0 writes ``path``, rank k writes ``<stem>.rank<k>.h5`` next to it,
    and meta["distributed"] ties the files together (FORMAT.md, *Distributed runs*). The
    recorder adds no collectives. ``all_ranks=False`` restores the old behaviour: non-zero
    ranks get a do-nothing :class:`NullRecorder`.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Recorder and kwargs.get("all_ranks", True) is False and _nonzero_rank():
            return object.__new__(NullRecorder)
        path = args[0] if args else kwargs.get("path")
        if cls is Recorder and isinstance(path, (str, os.PathLike)) and claim.is_devnull(path):
            # Recorder("/dev/null") silently wrote /dev/null.h5 (trial 18 A10): the null device
            # is the way to switch recording off, as for any other output path
            warnings.warn(f"trainspect: the run path is {os.fspath(path)}: nothing is recorded (rec.enabled is "
                          "False); give a file path such as 'runs/exp1.h5' to record", RecorderWarning,
                          stacklevel=_user_stacklevel())
            return object.__new__(NullRecorder)
        return object.__new__(cls)

    def __init__(self, path, name: str | None = None, config: dict | None = None, *,
                 resume: bool = False, overwrite: bool = False, flush_every: float = 1.0, stats_every: int | None = DEFAULT_STATS_EVERY,
                 hist_every: int | None = DEFAULT_HIST_EVERY, snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY,
                 transfer_every: int = DEFAULT_TRANSFER_EVERY, strict: bool = False, max_pending: int = 1 << 18,
                 roles: dict | None = None, all_ranks: bool = True, dense_start: int = DEFAULT_DENSE_START,
                 _device_path: bool = False, _start_time: float | None = None):
        if not isinstance(flush_every, numbers.Real) or not flush_every > 0:
            raise ValueError(f"flush_every must be a positive number of seconds, got {flush_every!r}")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict (or None), got {type(config).__name__}")
        if resume and overwrite:
            raise ValueError("resume=True continues the run at path, overwrite=True replaces it: pick one")
        if isinstance(path, (str, os.PathLike)) and not os.fspath(path):   # "" wrote ./.h5, a hidden file
            raise ValueError("empty run file path: give one such as 'runs/exp1.h5' (or a folder, 'runs/')")
        if isinstance(path, (str, os.PathLike)):
            # "~/runs/x.h5" made a directory named "~" in the working directory (the shell's
            # `rm -rf ~` to clean it up is a disaster): a user's home, as pandas reads it
            path = os.path.expanduser(path)
            claim.refuse_special(path, "resume" if resume else "overwrite" if overwrite else "new")   # a FIFO or device: before "/dev/zero" becomes "/dev/zero.h5" (trial 18 A10)
            path = _run_file(path, name)
        # Every argument is checked before the run file is claimed: a bad one must not leave
        # the file's writer lock held (the corrected call, a notebook cell run again, would be
        # refused as "being written by this process").
        self.stats_every = _check_every("stats_every", stats_every)
        self.hist_every = _check_every("hist_every", hist_every)
        self.snapshot_every = _check_every("snapshot_every", snapshot_every)
        self.transfer_every = max(1, _check_every("transfer_every", transfer_every))
        self.dense_start = _check_every("dense_start", dense_start)
        declared = fmt.check_roles(roles)
        config = dict(config or {})
        if isinstance(max_pending, bool) or not isinstance(max_pending, numbers.Integral) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int (rows held for the writer), got {max_pending!r}")
        self._max_rows = int(max_pending)
        dist_info = ranks.rank_and_world()
        self._open_key = (os.path.abspath(path), dist_info[0] if dist_info else 0)
        self._in_with = False
        self._managed = False   # opened by a framework integration, which closes it (RecorderSession)
        _close_earlier(self._open_key)
        try:
            self.path, self._lock, _ = claim.claim(
                path, dist_info[0] if dist_info else 0, dist_info is not None,
                "resume" if resume else "overwrite" if overwrite else "new")
        except (claim.RunFileInUse, claim.NotARunFile):
            raise   # its message already names the file (and the lock and the holder, or what it is)
        except OSError as exc:
            raise OSError(f"trainspect: cannot create run file {path}: {exc}") from exc
        rank0_path = ranks.split_rank_path(self.path)[0] if dist_info else self.path
        if rank0_path != claim.followed(path) and not (dist_info and dist_info[0]):
            # The one line that says where this run goes (rank 0 speaks for every rank).
            writer = None if dist_info else claim.writer_of(claim.followed(path))
            if writer is not None:   # two scripts launched on one path: both run, each in its file
                warnings.warn(f"trainspect: {path} is being written by {writer} (a run started on the same "
                              f"path); this run is recorded to {rank0_path}", RecorderWarning,
                              stacklevel=_user_stacklevel())
            else:   # the script's line, also through an integration (was integrations/recorder_session.py:43)
                warnings.warn(f"trainspect: {path} already holds a run; this run is recorded to {rank0_path} "
                              "(Recorder(..., overwrite=True) replaces it, resume=True continues it)",
                              RecorderWarning, stacklevel=_user_stacklevel())
        self.name = str(name) if name is not None else rank0_path.stem
        self.strict = bool(strict)
        # For tests: run the GPU code path on CPU tensors (no CPU shortcuts, no host reads of
        # tensor values on the training thread); tests/test_sync_free.py checks it is sync-free.
        self._device_path = bool(_device_path)
        _eager_log_setup()
        self._warned: set = set()
        self._call_names = self._joined = None   # names of the log() call in progress (_joined_once)
        self._tags: dict[str, int] = {}   # the user's metric names (what log() may write to)
        # the recorder's own sys/ names, apart: log({"sys/lr": 5.0}) found sys/lr in _tags once
        # watch() had made it and was mixed into the LR series (trial 18 A2)
        self._sys_tags: dict[str, int] = {}
        self._call_tags: dict[tuple, tuple] = {}   # names of a log() call -> their tag ids
        self._step = 0                  # see metadata.STEP_CONVENTION
        self._high_step = -1            # the largest step given to log() in this session
        # several log() calls at one step (a loss logged inside an LBFGS closure: 20 values a step):
        # one compare a call; past REPEAT_CALLS calls _repeated_step counts names (trial 18 U9)
        self._rep_step, self._rep_calls = -1, 0
        self._rep_counts: dict = {}
        self._rep_counts_step = -1
        self._forward_step = None       # optimizer step of the latest training-mode forward
        self._pid = os.getpid()
        self._forked = 0                # the pid of a forked child holding a copy of this Recorder
        # Without an optimizer: once the watched model's training forwards are seen, the step
        # advances at the first one after a log() (to _next_step), not at every log() call
        self._forwards_count = False
        self._next_step = None          # the step after the last log()'s, until a training forward
        # watch() came after steps of an optimizer that counts none (plain SGD): a log() before
        # the next training forward is of a step already taken (see _steps_unseen_before)
        self._stepped_unseen = False
        self._optimizer = None
        self._instruments = None
        self._waiting_watch = None      # hook handle: watch() waits for a lazy model's first forward
        self._closed = False
        self._end_error = None          # why the with-block ended (an exception), for state/error
        self._active = True             # False once the writer failed or the recorder closed
        self._since_transfer = 0
        self._last_transfer = time.perf_counter()
        # Device statistics travel at least this often, so live readers see them soon.
        self._transfer_interval = min(float(flush_every), TRANSFER_INTERVAL)
        try:
            config, cut = metadata.bounded_config(config)
            if cut:
                self._warn_once("<config>", f"config value(s) {', '.join(map(repr, cut[:5]))} too large for the run "
                                            f"file (over {metadata.MAX_CONFIG_BYTES >> 20} MB of JSON in all): "
                                            "kept as a note of their size")
            # _start_time: an importer's log began before its file (its first event's time)
            meta = metadata.base_meta(self.name, config, time.time() if _start_time is None else _start_time,
                                      self._schedule())
            if declared:
                meta[fmt.META_ROLES] = declared
            if dist_info is not None:
                meta[fmt.META_DISTRIBUTED] = ranks.dist_meta(self.path, *dist_info)
            self._writer = wt.WriterThread(self.path, flush_every, max_rows=self._max_rows, base_meta=meta,
                                           resume=resume)
        except OSError as exc:
            self._lock.release()
            verb = "resume" if resume and self.path.exists() else "create"
            raise OSError(f"trainspect: cannot {verb} run file {self.path}: {exc}") from exc
        except BaseException:
            self._lock.release()
            raise
        self._rows = self._writer.rows
        self._resume_step = 0            # where step counting starts (after a resumed run's last step)
        self._step_set = False           # set_step() was called (a resumed run's checkpoint step)
        if self._writer.file.resumed:
            for i, tag_name in enumerate(self._writer.tag_names):
                (self._sys_tags if tag_name.startswith(fmt.SYS_PREFIX) else self._tags).setdefault(tag_name, i)
            self._step = self._resume_step = self._writer._last_step + 1
        self.staging = wt.DeviceStaging(self._device_path)
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        _OPEN[self._open_key] = weakref.ref(self)
        _ALL.add(self)
        # If the recorder is dropped without close(), still finish the file.
        self._finalizer = weakref.finalize(self, _finish, self._writer, self._lock, fmt.STATUS_FINISHED)
        self._finalizer.atexit = False   # at exit the atexit hook above closes (and knows "crashed")
        self._terminated = None          # "SIGTERM"/"SIGHUP" once such a signal arrived (signals.py)
        if not signals.register(self):
            self._warn_once("Recorder", f"created in thread {threading.current_thread().name!r}: Python catches "
                                        "SIGTERM/SIGHUP in the main thread only, so a preemption will not mark this "
                                        "run terminated or flush its last rows (those flushed so far are kept); "
                                        "create the Recorder in the main thread to have them saved")

    def _schedule(self) -> dict:
        return {"stats_every": self.stats_every, "hist_every": self.hist_every,
                "snapshot_every": self.snapshot_every, "transfer_every": self.transfer_every,
                "dense_start": self.dense_start}

    @property
    def step(self) -> int:
        """The step ``log(step=None)`` would use now."""
        return self._step if self._forward_step is None else self._forward_step

    @property
    def enabled(self) -> bool:
        return self._active

    def set_step(self, step: int) -> None:
        """Number the next optimizer step (and ``log(step=None)`` from now on) ``step``.

        For frameworks whose step counter is not the recorder's 0-based count of optimizer
        steps: HF's ``global_step`` is 1-based, a resumed run continues at its checkpoint's step.
        """
        s = self._check_step(step)
        if s is not None:
            self._step = s
            self._forward_step = None
            self._next_step = None
            self._stepped_unseen = False
            self._step_set = True
            if self._optimizer is None:   # before watch(): which starts the step count here, not at 0
                self._resume_step = s

    def begin_forward(self, *args, **kwargs) -> None:
        """A training step whose forward pass is not a call of the watched model begins.

        The activation and input statistics start at the watched model's own forward call;
        frameworks that never call it (Lightning calls ``training_step``, which calls
        ``self.net(x)``) mark the step with ``begin_forward(batch)`` ... ``end_forward()``.
        Calls of the model inside are fine: the first forward of the step is the one measured.
        """
        if self._instruments is not None:
            self._instruments.training_forward(args, kwargs, end=False)

    def end_forward(self) -> None:
        """Ends what :meth:`begin_forward` began."""
        if self._instruments is not None:
            self._instruments.training_forward((), {}, end=True)

    # ------------------------------------------------------------ context manager
    def __reduce__(self):
        # pickled to a spawned worker it failed deep in h5py/weakref ("Can't pickle local object"),
        # and copy.copy() made a second handle on the same writer
        raise TypeError(f"a Recorder cannot be copied or sent to another process ({self.path}): make one in that "
                        "process, on a path of its own, or log from the process that owns this one")

    def __enter__(self):
        self._in_with = True      # in use: a second Recorder on its path is refused, not closing it
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None and not _clean_exit(exc if exc is not None else exc_type())
        if failed:
            # The reason goes to state/error: "crashed at step 57: RuntimeError: CUDA out of memory",
            # "...: KeyboardInterrupt: stopped by the user" (a bare "crashed" told nothing).
            self._end_error = _exit_reason(exc if exc is not None else exc_type())
        self.close(status=fmt.STATUS_CRASHED if failed else fmt.STATUS_FINISHED)
        return False

    # ------------------------------------------------------------ watch
    def watch(self, model, optimizer=None, *, scaler=None, stats_every=None, hist_every=None,
              snapshot_every=None) -> None:
        """Install hooks on ``model`` (and ``optimizer``); freezes the per-layer layout.

        ``optimizer`` may be a framework's wrapper (accelerate, Lightning): the hooks go on the
        torch optimizer inside. ``scaler``: the ``torch.amp.GradScaler`` of mixed-precision
        training, so that the steps it skips are counted and recorded (``sys/amp_skipped_step``),
        its loss scale is recorded and gradient norms are unscaled. Not needed: a scaler that
        steps the watched optimizer is found at its first ``step()`` (``amp.py``).

        Call it once, before training. Values logged before it wait up to 3 s for it (the
        per-layer layout is fixed once the file starts). A second call, or a call after data
        was already written without a watched model (after those 3 s, a ``flush()`` or a full
        queue), warns and is ignored. The file's layer tables then wait up to 10 s for the
        first training forward, which shows how often each module runs (a module shared between
        layers gets a row per call: FORMAT.md, *Shared modules*).
        """
        import torch

        from .instruments import Instruments
        from .layout import ModelLayout
        from .link import RecorderLink

        from .optimizer_wrappers import looks_like_optimizer, unwrap

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch() needs a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not (isinstance(optimizer, torch.optim.Optimizer)
                                          or looks_like_optimizer(optimizer)):
            raise TypeError(f"watch() optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if optimizer is not None:
            inner = unwrap(optimizer)   # accelerate's AcceleratedOptimizer, Lightning's LightningOptimizer, ...
            if inner is None:
                self._warn_once("<watch>", f"{type(optimizer).__name__} has no step hooks: gradients are "
                                           "recorded at log() calls instead of at optimizer steps")
                if not hasattr(optimizer, "param_groups"):
                    optimizer = None
            else:
                optimizer = inner
        if not self._active:
            self._report_writer_failure()
            return
        if (self._instruments is not None and model is self._instruments.w.model and self._optimizer is not None
                and optimizer is not None and unwrap(optimizer) is optimizer):
            if optimizer is not self._optimizer:
                # the same model with a new optimizer (a second fine-tuning phase): recorded from its first step
                self._optimizer = optimizer
                self._instruments.adopt_optimizer(optimizer)
            return
        if self._instruments is not None:
            # A GAN's second network, say: each Recorder has one model's layout and step clock.
            self._warn_once("<watch>", "watch() called a second time; this call is ignored (a Recorder "
                                       "watches one model: give another model and its optimizer a "
                                       "Recorder of its own, e.g. Recorder('run-D.h5'))")
            return
        if self._writer.started and not self._writer.file.resumed:
            self._warn_once("<watch>", "watch() called after the per-layer layout froze (data was already "
                                       "written); this call is ignored")
            return
        if self._waiting_watch is not None:
            self._warn_once("<watch>", "watch() called a second time; this call is ignored")
            return
        _close_earlier_watchers(model, self)
        if _has_lazy_parameters(model):
            # nn.LazyLinear & co. have no shapes before their first forward: the layout waits for it
            self._watch_after_first_forward(model, optimizer, scaler, stats_every, hist_every, snapshot_every)
            return
        if stats_every is not None:
            self.stats_every = _check_every("stats_every", stats_every)
        if hist_every is not None:
            self.hist_every = _check_every("hist_every", hist_every)
        if snapshot_every is not None:
            self.snapshot_every = _check_every("snapshot_every", snapshot_every)
        try:
            layout = ModelLayout(model, optimizer)
        except Exception as exc:  # noqa: BLE001 - watch() must never kill the user's training
            self._warn_once("<watch>", f"the model's layers could not be read ({type(exc).__name__}: {exc}); "
                                       "per-layer statistics are not recorded, log() keeps working")
            return
        if layout.shortened:
            self._warn_once("<watch>", f"{len(layout.shortened)} layer name(s) longer than the run file's "
                                       f"{fmt.NAME_LEN} bytes are stored shortened, their start and end around a "
                                       f"hash of the whole (e.g. {layout.shortened[0]!r})")
        if layout.meta_params:
            # torch.func's model-ensembling tutorial: the base model, moved to "meta", is only a
            # skeleton for vmap(functional_call); copying its weights raised and switched every
            # instrument off, with a failure message
            self._warn_once("<watch>", f"the watched {type(model).__name__} has its parameters on the meta device: "
                                       "it holds no data to watch (a torch.func ensemble's base model, run by "
                                       "vmap(functional_call)? watch() does not see inside vmap or functional_call); "
                                       "its layers are not recorded ("
                                       + ("the optimizer's tensors, the LR and log() are" if layout.param_tensors
                                          else "log() is")
                                       + "). Log the loss (each member's too), or train one member as a plain module, "
                                         "member(x), under watch() to have its layers judged")
        elif not layout.param_tensors:
            # pytorch/examples' forward-forward Net keeps its layers in a plain list: nothing to record
            self._warn_once("<watch>", f"the watched {type(model).__name__} has no parameters (layers kept in a plain "
                                       "Python list or dict instead of nn.ModuleList/ModuleDict?): no gradient, "
                                       "weight or layer records; watch the module that holds them")
        elif next(model.parameters(), None) is None:
            # ... and watched with one layer's optimizer, the warning blamed the forward call style
            self._warn_once("<watch>", f"the watched {type(model).__name__} owns none of the optimizer's parameters "
                                       "(layers kept in a plain Python list or dict instead of nn.ModuleList/"
                                       "ModuleDict?): they are recorded by position (optimizer.group0.param0, ...) "
                                       "and no layer's activations are; watch the module that holds them")
        if layout.n_snap_candidates > len(layout.snap_params):
            self._warn_once("<layout>", f"only the first {len(layout.snap_params)} of "
                                        f"{layout.n_snap_candidates} weight matrices get snapshots")
        meta = dict(self._writer.base_meta)
        meta.update(model=layout.structure(model), optimizer=metadata.optimizer_meta(optimizer),
                    schedule=self._schedule(), versions=metadata.versions())
        try:
            # A parameter-free leaf may run several times per forward (one nn.ReLU after every
            # conv): the layer tables wait (a few seconds at most) for the first training forward
            # to give each later call a row of its own (records/activations.py).
            started = ((layout.shareable and self.stats_every and not _compiled(model)
                        and self._writer.start_later(meta, layout.layout, SHARED_CALLS_WAIT))
                       or self._writer.start(meta, layout.layout))
        except Exception as exc:  # noqa: BLE001 - e.g. disk full while creating datasets
            self._writer.error = f"{type(exc).__name__}: {exc}"
            self._report_writer_failure()
            return
        if not started and self._writer.layout_differs:
            self._warn_once("<watch>", f"the model's layers differ from those of the run being resumed ({self.path}): "
                                       "per-layer statistics and the watch() series are not recorded in this "
                                       "segment; log() keeps working")
            return
        if not started:
            self._warn_once("<watch>", "watch() called after the per-layer layout froze (data was already "
                                       "written); this call is ignored")
            return
        hooked = optimizer if optimizer is not None and unwrap(optimizer) is optimizer else None
        if hooked is not None:
            self._optimizer = hooked
            self._step = self._resume_step
            done = 0 if self._step_set or self._resume_step else _steps_taken(hooked)
            if done:
                # watched after its first steps (minGPT's Trainer makes the optimizer inside run(),
                # so on_batch_end of iter 0 is the first place to watch; a checkpoint's optimizer
                # state loaded into a new run): count on from them, or every gradient record is
                # labelled with the step before its own
                self._step = done
                self._forward_step = done - 1    # a log() before the next forward: the step just taken
            else:
                self._stepped_unseen = not (self._step_set or self._resume_step) and _steps_unseen_before(hooked)
        try:
            self._instruments = Instruments(RecorderLink(self), model, hooked, layout, self._schedule(),
                                            scaler=scaler)
        except Exception as exc:  # noqa: BLE001 - watch() must never kill the user's training
            self._warn_once("<watch>", f"per-layer instruments could not be installed ({type(exc).__name__}: "
                                       f"{exc}); log() keeps working")
            return
        try:
            _WATCHERS[model] = [r for r in _WATCHERS.get(model, ()) if r() is not None] + [weakref.ref(self)]
        except TypeError:   # a model that takes no weak reference: lr_range_test cannot pause this one
            pass
        if self._instruments.scripted:
            self._warn_once("<watch>", "a TorchScript model takes no forward hooks: activation and input "
                                       "statistics are not recorded, and log() without step= counts optimizer "
                                       "steps (a loss logged after optimizer.step() needs step=)")
        elif self._instruments.compiled and self.stats_every:
            self._warn_once("<watch>", "activation statistics (acts) are not recorded for a torch.compile'd "
                                       "model; everything else is")

    def _start_layout(self, modules) -> bool | None:
        """The deferred layout (see watch()) starts now, with ``modules`` as its leaf modules;
        False if it had started already as watch() left it, None if there was none to start."""
        writer = self._writer
        try:
            return writer.start_pending(modules)
        except Exception as exc:  # noqa: BLE001 - e.g. disk full while creating datasets
            writer.error = f"{type(exc).__name__}: {exc}"
            self._report_writer_failure()
            return False

    def _watch_after_first_forward(self, model, optimizer, *args) -> None:
        """watch() again when the model's first forward has given its lazy parameters their
        shapes; that forward's step label is marked as the root hook would have (its
        activation statistics are not recorded)."""
        import torch

        from .hooks import RecorderHook, leave_out_of_copies

        def first_forward(module, inputs, output):
            handle, self._waiting_watch = self._waiting_watch, None
            if handle is None:
                return
            handle.remove()
            self.watch(model, optimizer, **dict(zip(("scaler", "stats_every", "hist_every", "snapshot_every"), args)))
            if self._instruments is not None and module.training and torch.is_grad_enabled():
                self._instruments.link.mark_forward()

        leave_out_of_copies(model)
        self._waiting_watch = model.register_forward_hook(RecorderHook(first_forward))

    # ------------------------------------------------------------ log
    def log(self, metrics, step=None) -> None:
        """Record ``{name: value}`` at ``step`` (default: see :attr:`step`). Never blocks on the GPU."""
        if _IS_COMPILING is not None and _IS_COMPILING():
            return _EAGER_LOG(self, metrics, step)
        if not self._active:
            if self._closed:
                self._warn_once("<log>", "log() after close() is ignored")
            self._report_writer_failure()
            return
        if self._writer.error is not None:
            self._report_writer_failure()
            return
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            self._bad("<metrics>", f"log() takes a dict of name -> number, got {type(metrics).__name__}", TypeError)
            return
        if step is None:
            # The step of this iteration's forward pass: a loss logged after optimizer.step()
            # lines up with that step's gradient records, as does one logged before it.
            s = self._step if self._forward_step is None else self._forward_step
        else:
            if type(step) is int and 0 <= step < _MAX_STEP:
                s = step
            else:
                s = self._check_step(step)
                if s is None:
                    return
            if s < self._high_step:
                self._stepped_back(s)
            else:
                self._high_step = s
            if s < self._resume_step and not self._step_set:
                self._resumed_without_set_step(s)
        if self._stepped_unseen and s >= self._step:
            self._step = s + 1      # this log() ends a step taken before watch(): the next is s + 1
        if s == self._rep_step:
            self._rep_calls += 1
            if self._rep_calls > REPEAT_CALLS:
                self._repeated_step(s, metrics)
        else:
            self._rep_step = s
            self._rep_calls = 1
        try:   # free in CPython 3.11+ when nothing is raised
            rows = self._rows
            pending = len(rows)
            if pending >= self._max_rows:
                self._drop(len(metrics))
            else:
                if pending >= self._max_rows >> 2:
                    self._writer.wake()
                wall = time.time()
                # Fast path: names seen together before, every value a Python float. One queue
                # entry per call, (step, tag ids, values, wall); the writer thread unpacks them.
                keys = tuple(metrics)
                tags = self._call_tags.get(keys)
                if tags is not None:
                    values = tuple(metrics.values())
                    for v in values:
                        if type(v) is not float:
                            tags = None
                            break
                if tags is not None:
                    rows.append((s, tags, values, wall))
                else:
                    self._log_each(keys, metrics, s, wall)
                if self._writer.idle:
                    self._writer.notify()
            if self._optimizer is None:
                self._logged_without_optimizer(s)
            elif self.staging.count > 64 * self.transfer_every:
                self._transfer()
        except Exception as exc:  # noqa: BLE001 - hostile input must not end the training (issue 11)
            self._log_failed("log", exc)

    def _repeated_step(self, s: int, metrics) -> None:
        """More than REPEAT_CALLS log() calls at step ``s``: count each name over the calls past
        them; a name logged in REPEAT_CALLS + 1 of those (so more than that many times at ``s``)
        is warned about once. The plot stacks such values on one step and the advisor judges
        the last of each step."""
        try:
            counts = self._rep_counts
            if self._rep_counts_step != s:
                counts.clear()
                self._rep_counts_step = s
            for name in metrics:
                c = counts[name] = counts.get(name, 0) + 1
                if c == REPEAT_CALLS + 1 and len(self._warned) < 10_000:
                    self._warn_once(f"metric {_shown(name)}", f"logged more than {REPEAT_CALLS} times at step {s}: "
                                    "the plot stacks them on one step and the advisor judges the last; inside an "
                                    "LBFGS closure? log the loss optimizer.step(closure) returns (or pass step= a "
                                    "counter of your own)", key="repeated_step")
        except Exception:  # noqa: BLE001 - a hostile name (unhashable, raising __str__) must not end the training
            pass

    def _logged_without_optimizer(self, s: int) -> None:
        """A log() at step ``s`` with no optimizer watched. The next step begins at the watched
        model's next training forward: a validation loss logged after an eval pass stays on the
        last training step (it took a step of its own, which repeated that step's gradients)."""
        if self._forwards_count and self._instruments is not None:
            if self._next_step is None:      # the first log() of the iteration: its gradients
                self._instruments.on_log(s, time.time())
            self._next_step = s + 1
        else:   # no model, or its forwards not seen through the hooks: one step per log() call
            if self._instruments is not None:
                self._instruments.on_log(s, time.time())
            self._step = s + 1
        self._maybe_transfer(time.perf_counter())

    def log_many(self, metrics, steps=None, wall_times=None) -> None:
        """Record whole arrays at once: ``{name: values}`` with ``values[i]`` at ``steps[i]``.

        ``values`` are 1-D host arrays (numpy, lists, CPU tensors) of equal length; ``steps``
        an integer array of that length, or None for consecutive steps from :attr:`step` (the
        step counter then advances past them when no optimizer is watched). All rows get the
        wall time of this call, or ``wall_times[i]`` (unix seconds; an importer keeps the log's
        own times; a non-finite one is this call's). Far cheaper per value than ``log()`` in a
        loop: the arrays go to the writer as one block.
        """
        if not self._active or self._writer.error is not None:
            if self._closed:
                self._warn_once("<log>", "log_many() after close() is ignored")
            self._report_writer_failure()
            return
        if not isinstance(metrics, Mapping):
            self._bad("<metrics>", f"log_many() takes a dict of name -> array, got {type(metrics).__name__}",
                      TypeError)
            return
        try:
            columns = []
            for name, values in metrics.items():
                try:
                    # No copy yet: the values are copied once, into the queued table below, which
                    # is what protects them from a caller that reuses its arrays.
                    v = np.asarray(values, dtype=np.float64).reshape(-1)
                except (TypeError, ValueError, RuntimeError) as exc:
                    self._bad(name, f"log_many() values must be a 1-D array of real numbers ({exc})", TypeError)
                    continue
                columns.append((name, v))
            if not columns:
                return
            n = len(columns[0][1])
            if any(len(v) != n for _, v in columns):
                self._bad("<metrics>", "log_many() arrays differ in length: "
                          + ", ".join(f"{k}={len(v)}" for k, v in columns), ValueError)
                return
            if steps is None:
                first = self.step
                step_col = np.arange(first, first + n, dtype=np.float64)
            else:
                try:
                    step_col = np.asarray(steps).reshape(-1)
                    ok = step_col.dtype.kind in "iu" and len(step_col) == n and \
                        (n == 0 or (int(step_col.min()) >= 0 and int(step_col.max()) < _MAX_STEP))
                except (TypeError, ValueError) as exc:
                    ok, step_col = False, exc
                if not ok:
                    self._bad("<step>", f"log_many() steps must be {n} integers in [0, 2**53)", TypeError)
                    return
                step_col = step_col.astype(np.float64)
            wall_col = time.time()
            if wall_times is not None:
                wall_col = _wall_column(wall_times, n, wall_col)
                if wall_col is None:
                    self._bad("<wall_times>", f"log_many() wall_times must be {n} numbers", TypeError)
                    return
            tag_ids = []
            for name, v in columns:
                tag = self._tags.get(name)
                if tag is None:
                    tag = self._new_metric(name)
                tag_ids.append(tag)
            columns = [(t, v) for t, (_, v) in zip(tag_ids, columns) if t is not None]
            if columns and n:
                # Column-major: each column is contiguous, so filling it and handing it to h5py
                # (append_scalars takes table[:, k]) copies nothing strided. One pass per column,
                # straight from the caller's arrays: no tile/repeat/concatenate temporaries.
                table = np.empty((n * len(columns), 4), order="F")
                for i, (tag, v) in enumerate(columns):
                    rows = slice(i * n, (i + 1) * n)
                    table[rows, 0] = step_col
                    table[rows, 1] = tag
                    table[rows, 2] = v
                    table[rows, 3] = wall_col
                if not self._writer.put_table(table):
                    self._drop(len(table))
            if steps is None and self._optimizer is None and n:
                self._step = int(step_col[-1]) + 1
        except Exception as exc:  # noqa: BLE001
            self._log_failed("log_many", exc)

    def _log_failed(self, call: str, exc: Exception) -> None:
        """An input log() did not foresee: with strict=True it is raised, else one warning per
        kind of failure and the call's values are skipped."""
        if self.strict:
            raise exc
        self._warn_once(f"<{call}>", f"{call}() could not record a call ({type(exc).__name__}: {str(exc)[:200]}); "
                                     "its values were skipped, training goes on", key=type(exc).__name__)

    def _log_each(self, keys, metrics, step, wall) -> None:
        """The general path of log(): validates each name and value, warns about bad ones."""
        tags, host_tags, host_values, all_named = self._tags, [], [], True
        self._call_names, self._joined = metrics, None   # nested names of this call (_log_nested)
        try:
            for name, value in metrics.items():
                tag = tags.get(name)
                if type(value) is float:
                    if tag is None:
                        tag = self._new_metric(name)   # validates the name (warns if bad)
                        if tag is None:
                            all_named = False
                            continue
                    host_tags.append(tag)
                    host_values.append(value)
                else:
                    self._log_value(name, tag, value, step, wall)
                    all_named = all_named and name in tags
        finally:   # the caller's dict (and the tensors in it) is not kept past the call
            self._call_names = self._joined = None
        if host_tags:
            self._rows.append((step, tuple(host_tags), tuple(host_values), wall))
        if all_named:   # next time these names take the fast path (while their values are floats)
            if len(self._call_tags) >= _MAX_CALL_SHAPES:
                self._call_tags.clear()
            self._call_tags[keys] = tuple(tags[name] for name in keys)

    def _resumed_without_set_step(self, step: int) -> None:
        # A restart from a checkpoint at step S that only passes step=S to log(): its own values
        # land at S, S+1, ..., but the recorder's records (gradients, LR, activations) follow its
        # step count, which went on after the earlier session's last step.
        self._warn_once("<step>", f"resumed run: log(step={step}) is before the earlier session's last step "
                                  f"{self._resume_step - 1}, but the recorder's own records (gradients, LR, "
                                  "activations...) go on from there; call rec.set_step(<checkpoint step>) after "
                                  "Recorder(resume=True) so they restart from the checkpoint too", key="resume")

    def _stepped_back(self, step: int) -> None:
        # dcgan's `for i, data in enumerate(loader)` restarts at 0 every epoch: the values are
        # kept at the steps given, but the plots and the advisor then read a zig-zag.
        self._warn_once("<step>", f"log(step={step}) after step {self._high_step}: the steps went back (a per-epoch "
                                  "batch index? give a global count such as epoch * len(loader) + i, or step=None); "
                                  "values are kept at the steps given", key="back")

    def _check_step(self, step):
        hint = ""
        try:
            if isinstance(step, numbers.Integral) and not isinstance(step, bool) and 0 <= step < _MAX_STEP:
                return int(step)
            whole = _whole_step(step)
            if whole is not None and 0 <= whole < _MAX_STEP:
                return whole
            shown = f"{step!r:.40}"
            if getattr(step, "is_cuda", False) or getattr(getattr(step, "device", None), "type", "cpu") != "cpu":
                hint = " (a step on the GPU would be read with a sync: pass int(step) where you read it anyway)"
        except Exception:  # noqa: BLE001 - a hostile int subclass: not a usable step either
            shown = "(unprintable)"
        self._bad("<step>", f"step must be an int in [0, 2**53), got {type(step).__name__} {shown}{hint}", TypeError,
                  key=(type(step).__name__, str(getattr(step, "dtype", ""))))   # once per kind of step
        return None

    def _new_metric(self, name):
        if not isinstance(name, str):
            self._bad(repr(name), f"metric name must be a str, got {type(name).__name__}", TypeError)
            return None
        if not name:
            self._bad(name, "empty metric name", ValueError)
            return None
        stored = name
        try:
            encoded = name.encode("utf-8")
        except UnicodeEncodeError:   # os.fsdecode() of undecodable bytes, lone surrogates
            stored = _storable_name(name)
            if self.strict:
                self._bad(name, f"metric name is not valid Unicode (undecodable bytes?); {stored!r} would be", ValueError)
            self._warn_once(f"metric {stored!r}", "the name is not valid Unicode (undecodable bytes?): "
                                                  f"recorded as {stored!r}")
            encoded = stored.encode("utf-8")
        except Exception as exc:  # noqa: BLE001 - a str subclass whose encode() raises
            self._bad(repr(name), f"metric name cannot be encoded ({type(exc).__name__}: {exc})", TypeError)
            return None
        if b"\0" in encoded:   # HDF5 strings end at a NUL: "loss\0" would be read back as "loss"
            self._bad(name, "metric name contains a NUL character", ValueError)
            return None
        if name.startswith(fmt.SYS_PREFIX):
            self._bad(name, f"names starting with {fmt.SYS_PREFIX!r} are reserved for the recorder", ValueError)
            return None
        limit = self._writer.file.tag_len   # 64 in a resumed file written before names could be longer
        if len(encoded) > limit:
            # kept, shortened as layer names are (start and end around a hash of the whole): the
            # series is the user's, and a 67-byte HF module path or 22 CJK characters lost theirs at 64
            stored = fmt.fit_name(stored, limit)
            self._warn_once(f"metric {_shown(name, 60)}", f"longer than the run file's {limit} bytes in UTF-8 "
                                                          f"({len(encoded)}): recorded as {stored!r}")
        return self._tag(name, stored)

    def _tag(self, name: str, stored: str | None = None) -> int:
        # sys/ names come only from the recorder (log() refuses them in _new_metric): kept out of
        # _tags, so that a user's log({"sys/lr": ...}) never finds the recorder's series there
        tags = self._sys_tags if name.startswith(fmt.SYS_PREFIX) else self._tags
        tag = tags.get(name)
        if tag is None:
            # Only on a metric's first use: two threads logging new names at once could
            # otherwise both read the same len() and label one metric's rows with the other's id.
            with _TAG_LOCK:
                tag = tags.get(name)
                if tag is None and stored is not None:   # a resumed run knows it by its stored spelling
                    tag = tags.get(stored)
                    if tag is not None:
                        tags[name] = tag
                if tag is None:
                    names = self._writer.tag_names
                    tag = len(names)
                    names.append(name if stored is None else stored)  # before any row that uses it is queued
                    tags[name] = tag
        return tag

    def _log_value(self, name, tag, value, step, wall) -> None:
        """Any value but a plain float/int. The metric's tag is created only for a good value."""
        device_tensor, wide, number = None, False, None
        torch = sys.modules.get("torch")
        read = None
        if (torch is not None and type(value) is torch.Tensor and not self._device_path and value.is_cpu
                and value.layout is torch.strided):
            # A CPU loss tensor, the commonest value after floats: one read and none of the checks
            # below (each torch call costs microseconds once training's code fills the caches).
            try:
                read = value.item()
            except Exception:  # noqa: BLE001 - not one real value (shape, nested): the checks below say why
                pass
        if type(read) in (float, int, bool):     # not complex
            number = float(read)
        elif isinstance(value, numbers.Real) or type(value) in _REAL_NOT_REGISTERED:   # bool, numpy, Fraction, ...
            try:
                number = float(value)
            except (OverflowError, ValueError) as exc:
                return self._bad(name, f"value cannot be stored as float64 ({exc})", ValueError)
            except Exception as exc:  # noqa: BLE001 - np.timedelta64 is "Real", a __float__ that raises
                return self._bad(name, f"{type(value).__name__} value has no float value ({type(exc).__name__}: "
                                       f"{str(exc)[:100]})", TypeError)
            if math.isinf(number) and _finite(value):   # np.longdouble("1e4000"): not what was logged
                return self._bad(name, f"value {value!r:.40} overflows float64", ValueError)
        elif torch is not None and isinstance(value, torch.Tensor):
            if value.is_nested or value.layout != torch.strided:
                kind = "nested" if value.is_nested else f"{value.layout} (sparse)".replace("torch.", "")
                return self._bad(name, f"{kind} tensor is not a scalar (densify it first)", TypeError)
            if value.numel() != 1:
                return self._bad(name, f"tensor of shape {tuple(value.shape)} is not a scalar (0-d or 1 element)",
                                 ValueError)
            if value.is_complex():
                return self._bad(name, "complex tensor", TypeError)
            if value.device.type == "meta":
                return self._bad(name, "tensor on the meta device has no value", ValueError)
            if value.device.type == "cpu" and not self._device_path:
                number = float(value.detach().reshape(()).item())
            elif value.dtype in (_STAGEABLE or _stageable(torch)):   # stays on the device until the next batched asynchronous
                device_tensor = value.detach().clone()   # copy; a copy, since the caller may update it in place
                wide = value.dtype == torch.float64 or not (value.is_floating_point() or value.dtype == torch.bool)
            else:   # float8 & co. do not promote in the batch's torch.cat, which would lose every queued value
                try:
                    device_tensor = value.detach().to(torch.float32)
                except Exception as exc:  # noqa: BLE001 - a dtype with no float value (bits, quantized)
                    return self._bad(name, f"{value.dtype} tensor has no float value ({type(exc).__name__})", TypeError)
        elif isinstance(value, np.ndarray):
            if value.size != 1 or value.dtype.kind not in "biuf":
                return self._bad(name, f"numpy array of shape {value.shape}, dtype {value.dtype} is not a real scalar",
                                 ValueError)
            number = float(value.reshape(-1)[0])
        elif isinstance(value, Mapping):
            return self._log_nested(name, value, step, wall, 1)
        elif isinstance(value, numbers.Complex):
            return self._bad(name, "complex value (log its .real, .imag or abs() as metrics of their own)", TypeError)
        elif value is None:
            return self._bad(name, "value is None", TypeError)
        elif isinstance(value, (str, bytes)):
            return self._bad(name, f"value is a {type(value).__name__}, not a number", TypeError)
        else:
            return self._bad(name, f"unsupported value type {type(value).__name__}", TypeError)
        if tag is None:
            tag = self._new_metric(name)
            if tag is None:
                return
        if device_tensor is not None:
            self.staging.add(device_tensor, SCALAR_VALUES, step, wall, tag, wide=wide)
        else:
            self._host_value(step, tag, number, wall)

    def _log_nested(self, name, metrics, step, wall, depth) -> None:
        """``{"train": {"loss": x}}`` logs ``train/loss``: metrics grouped the way W&B users
        nest them, named the way the metric tree and the loss roles read them."""
        if not isinstance(name, str):
            return self._bad(repr(name), f"metric name must be a str, got {type(name).__name__}", TypeError)
        if depth > _MAX_NESTING:
            return self._bad(name, f"dict nested more than {_MAX_NESTING} levels deep", ValueError)
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                self._bad(name, f"nested metric name {key!r} is not a non-empty str", TypeError)
                continue
            full = str.__add__(str.__add__(name, "/"), key)   # str's own: a subclass's methods may raise
            if isinstance(value, Mapping):
                self._log_nested(full, value, step, wall, depth + 1)
            elif self._joined_once(full):
                self._log_value(full, self._tags.get(full), value, step, wall)

    def _joined_once(self, full: str) -> bool:
        """The first time this log() call names ``full``: ``{"a": {"b": 1}, "a/b": 2}`` gave two
        values of ``a/b`` at one step."""
        if self._joined is None:
            self._joined = {k for k, v in (self._call_names or {}).items() if not isinstance(v, Mapping)}
        if full in self._joined:
            self._bad(full, "given twice in one log() call (nested dicts join their keys with '/')", ValueError)
            return False
        self._joined.add(full)
        return True

    def _host_value(self, step, tag, value, wall) -> None:
        if len(self._rows) >= self._max_rows:
            self._drop(1)
        else:
            self._rows.append((step, (tag,), (value,), wall))
            if self._writer.idle:
                self._writer.notify()

    # ------------------------------------------------------------ device transfer
    def _maybe_transfer(self, now: float) -> None:
        """Called once per step: ship staged device statistics every N steps or flush interval."""
        self._since_transfer += 1
        if self.staging.count and (self._since_transfer >= self.transfer_every
                                   or now - self._last_transfer >= self._transfer_interval):
            self._transfer(now)

    def _transfer(self, now: float | None = None) -> None:
        self._since_transfer = 0
        self._last_transfer = time.perf_counter() if now is None else now
        n = self.staging.count
        if not n:
            return
        if self._writer.error is not None or self._writer.closed:
            self.staging = wt.DeviceStaging(self._device_path)   # nobody will write these: free them
            return
        try:
            batch = self.staging.take()
        except Exception as exc:  # noqa: BLE001
            self._instrument_failed(exc)
            self.staging = wt.DeviceStaging(self._device_path)
            return
        if batch is not None and not self._writer.put_batch(batch):
            self._drop(n)

    # ------------------------------------------------------------ flush / close
    def flush(self, timeout: float | None = 60.0) -> bool:
        """Barrier: returns once everything logged before is written and flushed to disk.

        Returns False (with a warning) if the writer failed or did not finish in ``timeout``.
        """
        if not self._active:
            self._report_writer_failure()
            return False
        if self._instruments is not None:
            self._instruments.flush()      # records held for the iteration's end (weight updates)
        self._transfer()
        ok = self._writer.barrier(timeout)
        if self._writer.error is not None:
            self._report_writer_failure()
            return False
        if not ok:
            self._warn_once("<flush>", f"flush() did not complete within {timeout} s")
        return ok

    def close(self, status: str | None = None) -> None:
        """Write what is pending, mark the run finished (or ``status``) and close the file. Idempotent.

        After a SIGTERM/SIGHUP the run stays marked ``terminated (SIG...) at step N`` (status
        ``crashed``): it did not run to its end, even if a handler let the script wind down.
        """
        if self._closed:
            return
        self._closed = True
        if self._forked:     # a forked child's copy: only its hooks on the child's model go
            if self._instruments is not None:
                self._instruments.remove()
                self._instruments = None
            return
        if _OPEN.get(self._open_key, lambda: None)() is self:
            del _OPEN[self._open_key]
        atexit.unregister(self._atexit)
        self._finalizer.detach()
        signals.unregister(self)
        error = self._end_error
        if self._terminated is not None:
            status, error = fmt.STATUS_CRASHED, None   # keep the signal's mark in state/error
        if self._instruments is not None:
            self._instruments.remove()
            self._instruments = None
        if self._waiting_watch is not None:
            self._waiting_watch.remove()
            self._waiting_watch = None
        if self._active and self._writer.error is None:
            self._transfer()
        if self._writer.close(status or fmt.STATUS_FINISHED, error=error, timeout=CLOSE_TIMEOUT):
            _release(self._writer, self._lock)
        else:
            self._warn_once("close()", f"the run file was still being written after {CLOSE_TIMEOUT:.0f} s (a slow "
                                       "or stuck disk): if the process exits now it is not marked finished and "
                                       "reads as 'writer stopped responding', with the rows flushed so far")
            # the name stays held while the writer still writes (readers tell its death by the lock)
            threading.Thread(target=_release_when_done, args=(self._writer, self._lock), daemon=True,
                             name="trainspect-close").start()
        if self._writer.file.recovered_to is not None:   # the file was deleted while written (unlinked.py)
            self.path = self._writer.file.recovered_to
        if self._writer.error is not None:
            self._report_writer_failure()
        self._active = False
        self._optimizer = None

    def _on_signal(self, name: str, frame) -> None:
        """SIGTERM/SIGHUP (signals.py): flush, mark the run terminated; the caller then chains."""
        if self._closed:
            return
        self._terminated = name
        if not self._active or self._writer.error is not None:
            return
        # Device values go along unless the signal interrupted the recorder itself (its staging
        # may be half-updated then); host values are always complete.
        if not _inside_recorder(frame):
            try:
                self._transfer()
            except Exception:  # noqa: BLE001
                pass
        self._writer.mark(fmt.STATUS_CRASHED, f"terminated ({name}) at step {{step}}", signals.FLUSH_TIMEOUT)

    # ------------------------------------------------------------ problems
    def _warn_once(self, name: str, problem: str, key=None) -> None:
        key = (name, problem if key is None else key)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"trainspect: {name}: {problem}", RecorderWarning, stacklevel=_user_stacklevel())

    def _bad(self, name, problem: str, exc_type, key=None) -> None:
        if self.strict:
            raise exc_type(f"trainspect: metric {_shown(name)}: {problem}")
        # Once per metric and kind of error, not per message: a message that quotes the value
        # (a fractional step at every call) would warn, and grow the warned set, at every call.
        self._warn_once(f"metric {_shown(name)}", f"{problem}; value skipped", key=(exc_type, key))

    def _drop(self, n: int) -> None:
        self._writer.dropped += n
        self._warn_once("<queue>", "the writer cannot keep up: values are being dropped "
                                   "(the count is in the run file; trainspect info shows it)")

    def _left_in_parent(self) -> None:
        """This is a forked child's copy of a Recorder of its parent: inert. The run file, its
        lock and the writer thread are the parent's; nothing here may close or free them."""
        self._forked = os.getpid()
        self._active = False
        self._finalizer.detach()
        atexit.unregister(self._atexit)
        if _OPEN.get(self._open_key, lambda: None)() is self:
            del _OPEN[self._open_key]
        if self._instruments is not None:
            self._instruments.enabled = False     # the child's copy of the model still has the hooks
        fd, self._lock.fd = self._lock.fd, None   # the child's copy of the descriptor (the lock stays the parent's)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _report_writer_failure(self) -> None:
        if self._forked:
            self._warn_once("<fork>", f"this Recorder belongs to process {self._pid}, which forked this one: "
                                      "what is logged here is not recorded (make a Recorder in this process, "
                                      "on a file of its own)")
            return
        err = self._writer.error
        if err is None:
            return
        self._active = False
        if self._instruments is not None:
            self._instruments.enabled = False   # hooks removed at close(): maybe inside a hook now
        self._warn_once("<writer>", f"recording to {self.path} stopped: {err}; training continues")

    def _instrument_failed(self, exc: Exception) -> None:
        was_on = self._instruments is not None and self._instruments.enabled
        if self._instruments is not None:
            self._instruments.enabled = False   # removed at close(): we may be inside a hook now
            self._instruments.release()         # a model-sized weight copy must not outlive an OOM
        self._warn_once("<instruments>", f"a per-layer instrument failed ({type(exc).__name__}: {exc}); "
                                         "per-layer instruments are switched off, log() keeps working")
        if was_on:
            # In the file too: records that stop here are not a loop that stopped stepping.
            try:
                self._host_value(self._step, self._tag(fmt.SYS_INSTRUMENTS_OFF), 1.0, time.time())
            except Exception:  # noqa: BLE001 - the mark is a courtesy; training goes on
                pass



def _wall_column(wall_times, n: int, now: float):
    """``wall_times`` as n float64 unix times (a non-finite one: ``now``), or None if they are not n numbers."""
    try:
        walls = np.asarray(wall_times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return np.where(np.isfinite(walls), walls, now) if len(walls) == n else None


def _public_signature(init) -> inspect.Signature:
    """``__new__(*args, **kwargs)`` would hide the real arguments from ``help()`` and
    ``inspect.signature``; show ``__init__``'s without ``self`` and the tests-only ``_device_path``."""
    sig = inspect.signature(init)
    params = [p for name, p in sig.parameters.items() if name != "self" and not name.startswith("_")]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


Recorder.__signature__ = _public_signature(Recorder.__init__)


class NullRecorder(Recorder):
    """What ``Recorder(...)`` returns on a non-zero rank: accepts every call, records nothing."""

    def __init__(self, path=None, name=None, config=None, **kwargs):
        self.path = Path(path) if path is not None else None
        self.name = name

    @property
    def step(self) -> int:
        return 0

    def set_step(self, step) -> None:
        pass

    def begin_forward(self, *args, **kwargs) -> None:
        pass

    def end_forward(self) -> None:
        pass

    @property
    def enabled(self) -> bool:
        return False

    def watch(self, model, optimizer=None, **kwargs) -> None:
        pass

    def log(self, metrics, step=None) -> None:
        pass

    def flush(self, timeout=None) -> bool:
        return True

    def close(self, status=None) -> None:
        pass

    def __exit__(self, exc_type, exc, tb):
        return False
