"""The background thread that owns the run file, and the device-to-host transfer it waits on.

The training thread never touches HDF5 after start-up and never waits on the GPU:

* host numbers go into ``rows`` (a deque of ``(step, tag, value, wall)`` tuples; deque
  append/popleft are atomic, so no lock on the hot path);
* device tensors are gathered by :class:`DeviceStaging`, concatenated on the device every
  few steps and copied ``non_blocking`` into pinned host memory after which a CUDA event is
  recorded; the batch goes into ``batches`` and this thread polls the event
  (``event.query()``, never a blocking sync) before reading the values;
* ``flush()`` puts a barrier into ``batches``: everything logged before it is written and
  flushed to disk when the barrier is released.

Memory is bounded: at most ``max_rows`` pending host values and ``max_batches`` pending
batches; beyond that values are dropped and counted (``state/values[STATE_DROPPED]``, which
``trainspect info`` shows).
A failure of the file (disk full, I/O error) is stored in ``error``; the recorder then
warns once and stops recording while training goes on.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import replace
from itertools import chain
from operator import itemgetter

import numpy as np

try:
    import resource
except ImportError:  # not on Windows
    resource = None

from . import format as fmt
from .h5file import LayerLayout, RunFileWriter

# Flush policy (see WriterThread._run): values are written and flushed as soon as they are
# queued, but at most once per MIN_FLUSH_GAP seconds, or per FLUSH_COST_FACTOR times what a
# write typically costs (median CPU time of the last few) when that is longer, up to
# MAX_FLUSH_GAP: a steady stream of small writes takes at most ~1/10 of a core. A reader in
# another process sees a value ~MIN_FLUSH_GAP / 2 after log() on average. With nothing
# queued there is no write at all, only the heartbeat every flush_every.
# Per-layer records (gradient, weight and activation statistics, histograms, snapshots) are
# held and written on their own, slower clock: RECORD_COST_FACTOR times what a write of them
# typically costs, so their costly writes (~25 dataset appends each) no longer stretch the
# metrics' gap, and the writer holds the GIL for them at most ~1/40 of the time. Measured with
# one clock for both: a reader of an MLP trained under watch() at default settings saw the
# loss p50 56 / p99 111 ms after log() (bench_live.py), with two 13 / 27 ms; on the transformer
# of bench_recorder.py with every instrument every step, the training thread waited for the GIL
# 0.70-0.86 ms a step (14 waits) with one clock, 0.44-0.71 ms (8-9) with two. (h5py lets other
# threads take the GIL during each call into HDF5; each hand-off can make the training thread
# wait to get it back.)
MIN_FLUSH_GAP = 0.02
MAX_FLUSH_GAP = 0.25
# Values logged before watch() wait this long for it before the file starts without per-layer
# tables (the layout is fixed once SWMR starts): a script that logs its config or a first
# evaluation and then calls watch() must still get its per-layer records. flush()/close() and
# a full queue start the file at once.
LAYOUT_GRACE = 3.0
FLUSH_COST_FACTOR = 10.0
RECORD_COST_FACTOR = 40.0
SPACE_CHECK_S = 0.25


def host_tables(entries: list) -> list:
    """The queue's entries in order: runs of log() entries become one table each, log_many()
    tables stay as they are (the order of a metric's points is the order they were logged)."""
    cuts = [i for i, e in enumerate(entries) if type(e) is np.ndarray]
    if not cuts:
        return [host_table(entries)]
    out, start = [], 0
    for i in cuts:
        if i > start:
            out.append(host_table(entries[start:i]))
        out.append(entries[i])
        start = i + 1
    if start < len(entries):
        out.append(host_table(entries[start:]))
    return out


def host_table(rows: list) -> np.ndarray:
    """Queue entries ``(step, tag ids, values, wall)`` -> float64 table (step, tag, value, wall).

    One pass per column through C iterators: ~10x faster than ``np.array`` on per-value tuples.
    """
    n = len(rows)
    tags = list(map(itemgetter(1), rows))
    counts = np.fromiter(map(len, tags), np.int64, n)
    total = int(counts.sum())
    table = np.empty((total, 4))
    table[:, 0] = np.repeat(np.fromiter(map(itemgetter(0), rows), np.float64, n), counts)
    table[:, 1] = np.fromiter(chain.from_iterable(tags), np.float64, total)
    table[:, 2] = np.fromiter(chain.from_iterable(map(itemgetter(2), rows)), np.float64, total)
    table[:, 3] = np.repeat(np.fromiter(map(itemgetter(3), rows), np.float64, n), counts)
    return table


def _gap(costs: deque, cost: float, factor: float, flush_every: float) -> float:
    """The time between two writes of a kind after one that took ``cost`` CPU seconds: ``factor``
    times the median of the last few, within MIN_FLUSH_GAP and MAX_FLUSH_GAP (and flush_every)."""
    costs.append(cost)
    typical = sorted(costs)[len(costs) // 2]
    return min(flush_every, MAX_FLUSH_GAP, max(MIN_FLUSH_GAP, factor * typical))


def _fit_error(message: str) -> str:
    """``message`` cut to the error field, at whole UTF-8 characters so readers can decode it."""
    return message.encode("utf-8")[:fmt.ERROR_LEN].decode("utf-8", "ignore")


class Barrier:
    __slots__ = ("done", "status", "error")

    def __init__(self, status: str | None = None, error: str | None = None):
        self.done = threading.Event()
        self.status = status    # a mark (see WriterThread.mark): written with this barrier's flush
        self.error = error


class Close:
    __slots__ = ("status", "error", "done")

    def __init__(self, status: str, error: str | None = None):
        self.status = status
        self.error = error      # why the run ended early (the exception), written to state/error
        self.done = threading.Event()


class DeviceBatch:
    """Values of many steps, on the host (or on their way there), with where each goes."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = parts  # [(host tensor or array, cuda event or None, [(spec, step, wall, arg, offset, n)])]

    def ready(self) -> bool:
        return all(ev is None or ev.query() for _, ev, _ in self.parts)


class DeviceStaging:
    """Collects device tensors on the training thread; ``take()`` turns them into one batch.

    Tensors are grouped by (device, host dtype): float64 for values that need it (float64 or
    integer tensors, histogram counts), float32 otherwise. One ``torch.cat`` per group, one
    asynchronous copy, one event: no host-device synchronisation. Values the CPU fast path
    already holds as numpy arrays are grouped by dtype alone and joined with numpy: no torch
    call at all (each costs a few microseconds with the training loop's code in the caches).
    """

    def __init__(self, device_path: bool = False):
        self.device_path = device_path   # for tests: CPU tensors take the GPU path (see take())
        self.groups: dict = {}   # (device, dtype) -> ([tensors], [(spec, step, wall, arg, n)])
        self.host: dict = {}     # numpy dtype -> ([arrays], [(spec, step, wall, arg, n)])
        self.count = 0

    def add(self, tensor, spec, step, wall, arg, wide: bool = False) -> None:
        """Stage ``tensor`` (a torch tensor, or a numpy array of host values) for ``spec`` (a
        records.base.Record), whose ``unpack(values, arg, step, wall, rows)`` reads it on the
        writer thread."""
        if type(tensor) is np.ndarray:
            dtype = np.float64 if wide else np.float32
            group = self.host.get(dtype)
            if group is None:
                group = self.host[dtype] = ([], [])
            group[0].append(tensor)
            group[1].append((spec, step, wall, arg, tensor.size))
            self.count += 1
            return
        import torch

        flat = tensor if tensor.dim() == 1 else tensor.reshape(-1)   # a view op saved per record
        dtype = torch.float64 if wide else torch.float32
        key = (flat.device, dtype)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = ([], [])
        group[0].append(flat)
        group[1].append((spec, step, wall, arg, flat.numel()))
        self.count += 1

    def take(self):
        """Start the transfer of everything staged; returns a DeviceBatch or None if empty."""
        if not self.count:
            return None
        parts = [self._device_part(device, dtype, tensors, sinks)
                 for (device, dtype), (tensors, sinks) in self.groups.items()]
        for dtype, (arrays, sinks) in self.host.items():
            # concatenate copies (also a single array): the writer never sees the caller's memory
            host = np.concatenate([a.reshape(-1) for a in arrays]).astype(dtype, copy=False)
            parts.append((host, None, self._placed(sinks)))
        self.groups, self.host = {}, {}
        self.count = 0
        return DeviceBatch(parts)

    @staticmethod
    def _placed(sinks) -> list:
        offset, placed = 0, []
        for spec, step, wall, arg, n in sinks:
            placed.append((spec, step, wall, arg, offset, n))
            offset += n
        return placed

    def _device_part(self, device, dtype, tensors, sinks):
        import torch

        try:
            flat = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
        except RuntimeError:   # dtypes cat cannot promote together: each converted first, nothing lost
            flat = torch.cat([t.to(dtype) for t in tensors])
        if flat.dtype != dtype:
            flat = flat.to(dtype)
        event = None
        if device.type == "cuda" or (self.device_path and device.type == "cpu"):
            # The GPU path; forced for CPU tensors in tests, where pinning and the event
            # need CUDA and are left out.
            cuda = device.type == "cuda"
            host = torch.empty(flat.shape, dtype=dtype, pin_memory=cuda)
            host.copy_(flat, non_blocking=True)
            if cuda:
                event = torch.cuda.Event()
                event.record(torch.cuda.current_stream(device))
        elif device.type == "cpu":
            # cat made a fresh tensor, but a single staged tensor may be a view of a live one.
            host = flat.clone() if len(tensors) == 1 else flat
        else:  # other accelerators: a plain copy (may synchronise; CUDA is the fast path)
            host = flat.to("cpu")
        return host, event, self._placed(sinks)


class WriterThread:
    """One daemon thread that owns a :class:`RunFileWriter`. Created on the training thread."""

    def __init__(self, path, flush_every: float = 1.0, max_rows: int = 1 << 18, max_batches: int = 256,
                 base_meta: dict | None = None, min_free_bytes: int = 64 << 20, resume: bool = False):
        # raises on a bad path, before any training starts
        self.file = RunFileWriter(path, resume, session_meta=base_meta if resume else None)
        self.min_free_bytes = int(min_free_bytes)
        self.flush_every = float(flush_every)
        self.max_rows = int(max_rows)
        self.max_batches = int(max_batches)
        self.base_meta = dict(base_meta or {})
        self.lock = threading.Lock()        # file calls: this thread vs start() from watch()
        # (step, tag ids, values, wall) per log() call, or an (n, 4) float64 table from log_many()
        self.rows: deque = deque()
        self.batches: deque = deque()
        self.tag_names: list[str] = []      # append-only from the training thread; id = position
        self.dropped = 0                    # incremented by the training thread
        self._dropped_written = 0
        self.error: str | None = None
        self.closed = False
        self._wake = threading.Event()
        # Set by the writer just before it sleeps with nothing queued: the next value logged
        # wakes it (one Event.set per idle period, not per log() call). See _run.
        self.idle = True
        self._busy = False                  # rows taken from the queue but not yet flushed
        self._urgent = False                # a barrier, close or full queue: write now
        self._gap = MIN_FLUSH_GAP           # minimum time between two data flushes
        self._waiting: list = []            # barriers/close taken from the queue, not yet released
        self._last_step = -1
        self.layout_differs = False         # a resumed run's model does not match watch()'s
        self._resumed_watch = False
        if self.file.resumed:   # continue the run's tag ids and step count
            self.file.state[fmt.STATE_FLUSH_EVERY] = self.flush_every   # readers judge staleness by this session's
            self.tag_names = list(self.file.tag_names)
            last = self.file.state[fmt.STATE_LAST_STEP]
            self._last_step = int(last) if np.isfinite(last) else -1
        self._last_flush = time.monotonic()
        self._layout_wait_until = 0.0 if self.file.resumed else self._last_flush + LAYOUT_GRACE
        # (meta, layout) of a watch() that waits for the model's first training forward to
        # complete its layout (shared modules' later calls: records/activations.py), and until
        # when it waits; any write, barrier or close before then starts the file with it as is.
        self._pending = None
        self._pending_until = 0.0
        self._write_start = 0.0
        self._costs: deque = deque(maxlen=9)   # CPU seconds of the last writes of metrics only
        self._wrote = False
        # Per-layer records decoded but not yet written ({group: [(step, fields)]}), and their clock
        self._held: dict = {}
        self._record_costs: deque = deque(maxlen=9)   # CPU seconds of the last writes with records
        self._records_due = 0.0
        self._wrote_records = False
        self._space_checked, self._unchecked, self._room = -SPACE_CHECK_S, 0, 0   # see _check_space
        self.thread = threading.Thread(target=self._run, name="trainspect-writer", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ training-thread side
    @property
    def started(self) -> bool:
        return self.file.started

    def start(self, meta: dict, layout: LayerLayout) -> bool:
        """Freeze the layout now (from watch()). False if the file had already started.

        A resumed run's layout is already in the file: True once if ``layout`` matches it
        (the per-layer records continue), else False with ``layout_differs`` set."""
        with self.lock:
            if self.file.resumed and not self.error and not self._resumed_watch:
                self._resumed_watch = True
                self.layout_differs = not self.file.same_layout(layout)
                return not self.layout_differs
            if self.file.started or self.error:
                return False
            self._pending = None
            self.file.start(meta, layout, self.flush_every)
        self.wake()   # values logged before watch() were held for the layout: write them now
        return True

    def start_later(self, meta: dict, layout: LayerLayout, wait: float) -> bool:
        """``start()`` deferred for at most ``wait`` seconds, for ``start_pending()`` to add
        modules to ``layout``; False (nothing deferred) when ``start()`` would not start."""
        with self.lock:
            if self.file.resumed or self.file.started or self.error:
                return False
            self._pending = (meta, layout)
            self._pending_until = time.monotonic() + wait
            self._layout_wait_until = max(self._layout_wait_until, self._pending_until)
        return True

    def start_pending(self, modules: list | None = None) -> bool:
        """Start the deferred layout now, with ``modules`` in place of its modules if given;
        False if it was already started (its wait ended, or something had to be written)."""
        with self.lock:
            if self._pending is None or self.file.started or self.error:
                return False
            meta, layout = self._pending
            if modules is not None:
                layout = replace(layout, modules=modules)
            self._pending = None
            self.file.start(meta, layout, self.flush_every)
        self.wake()
        return True

    def _start_file(self) -> None:
        """Start the file for a write that cannot wait (under ``lock``): with the deferred
        layout if watch() left one, else with no layers (watch() to come, or none)."""
        meta, layout = self._pending or (dict(self.base_meta), LayerLayout())
        self._pending = None
        self.file.start(meta, layout, self.flush_every)

    def put_batch(self, item) -> bool:
        n = len(self.batches)
        if n >= self.max_batches:
            return False
        self.batches.append(item)
        if n >= self.max_batches // 4:
            self.wake()
        elif self.idle:
            self.notify()
        return True

    def put_table(self, table) -> bool:
        """Queue an (n, 4) table from log_many() (in order with log()'s entries);
        False (dropped) if the queue is full."""
        if len(self.rows) >= self.max_rows:
            return False
        self.rows.append(table)
        if self.idle:
            self.notify()
        return True

    def notify(self) -> None:
        """Something was queued while the writer slept idle: let it write (after the gap)."""
        self.idle = False
        self._wake.set()

    def wake(self) -> None:
        """Ask for a write now, without waiting for the flush gap (the queue is filling up)."""
        self._urgent = True
        self.idle = False
        self._wake.set()

    def barrier(self, timeout: float | None) -> bool:
        """Return once everything queued before is written and flushed (False on timeout/failure)."""
        if self.error or self.closed:
            return False
        # Nothing queued, held or being written: everything logged is already on disk, a flush
        # of unchanged data costs nothing. (Queue first, then _busy, then _held: the writer
        # sets _busy before it takes rows, holds records before it clears _busy, and clears
        # _busy after the flush of what it wrote.)
        if not (self.rows or self.batches or self._busy or self._held) and self.file.started:
            return True
        b = Barrier()
        self.batches.append(b)  # barriers are never dropped
        self.wake()
        return self._wait(b.done, timeout) and not self.error

    def mark(self, status: str, error: str, timeout: float | None) -> bool:
        """Flush everything queued and set the run's status and error with it (a barrier that
        also writes; ``{step}`` in ``error`` becomes the last step written)."""
        if self.error or self.closed:
            return False
        b = Barrier(status, error)
        self.batches.append(b)
        self.wake()
        return self._wait(b.done, timeout) and not self.error

    def _wait(self, done: threading.Event, timeout: float | None) -> bool:
        """Wait for ``done``; give up early if the thread died (then nobody would set it)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.05):
            if not self.thread.is_alive():
                return done.is_set()
            if end is not None and time.monotonic() >= end:
                return False
        return True

    def close(self, status: str, timeout: float | None = 60.0, error: str | None = None) -> bool:
        """Hand the close to the writer thread and wait up to ``timeout``; False when it did not
        finish by then (a disk that takes minutes per flush: the caller says so)."""
        if self.closed:
            return True
        self.closed = True
        c = Close(status, error)
        self.batches.append(c)
        self.wake()
        done = self._wait(c.done, timeout)
        self.thread.join(timeout=1.0 if timeout is None else min(timeout, 1.0))
        return done or not self.thread.is_alive()

    # ------------------------------------------------------------ writer-thread side
    def _run(self) -> None:
        try:
            timeout = self.flush_every
            while True:
                self._wake.wait(max(0.0, timeout))
                self._wake.clear()
                now = time.monotonic()
                queued = bool(self.rows or self.batches)
                if (queued and not self.batches and not self._urgent and not self.file.started
                        and now < self._layout_wait_until):
                    timeout = self._layout_wait_until - now   # hold the values: watch() may come
                    continue
                if queued and not self._urgent and now < self._last_flush + self._gap:
                    timeout = self._last_flush + self._gap - now   # collect until the gap is over
                    continue
                urgent, self._urgent = self._urgent, False
                self._busy = True
                waiting = self._waiting = self._drain(urgent)
                for w in waiting:
                    if type(w) is Barrier and w.status is not None:
                        self._mark(w.status, w.error)
                wrote = self._wrote
                if wrote or waiting or now - self._last_flush >= self.flush_every:
                    self._flush(wrote, start=bool(waiting))
                self._busy = False
                timeout = self._next_timeout()
                close = next((w for w in waiting if isinstance(w, Close)), None)
                if close is not None:
                    with self.lock:
                        if not self.file.started:
                            self._start_file()
                        if close.error:
                            self.file.set_error(_fit_error(close.error))
                        self.file.close(close.status, self._last_step if self._last_step >= 0 else None)
                    for w in waiting:
                        w.done.set()
                    return
                for w in waiting:
                    w.done.set()
        except BaseException as exc:  # noqa: BLE001 - any failure must stop recording, not training
            self.error = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self._abandon_file()
            # Release everybody waiting so no flush()/close() hangs.
            for w in self._waiting:
                w.done.set()
            while self.batches:
                item = self.batches.popleft()
                if isinstance(item, (Barrier, Close)):
                    item.done.set()
            self.rows.clear()

    def _mark(self, status: str, error: str) -> None:
        with self.lock:
            if not self.file.started:
                self._start_file()
            self.file.set_status(status)
            self.file.set_error(_fit_error(error.replace("{step}", str(self._last_step))))

    def _abandon_file(self) -> None:
        """Close the file after a failure. If even recording the error fails (disk full),
        point HDF5's file descriptor at an anonymous in-memory file first, so the writes HDF5
        retries at close land somewhere. (Measured: after a write failed with EFBIG, HDF5 2.0
        can still segfault at interpreter exit; see the recorder's FORMAT.md, "Failures".)"""
        last = self._last_step if self._last_step >= 0 else None
        # recording stops here, the training goes on: readers must not call the run crashed
        self.file.state[fmt.STATE_WRITER_FAILED] = 1.0
        try:
            self.file.set_error(self.error[: fmt.ERROR_LEN])
            self.file.flush(last)
        except BaseException:  # noqa: BLE001 - the file cannot take more writes
            try:
                fd = self.file.f.id.get_vfd_handle()
                sink = os.memfd_create("trainspect-discard") if hasattr(os, "memfd_create") \
                    else os.open(os.devnull, os.O_RDWR)
                os.dup2(sink, fd)
                os.close(sink)
            except BaseException:  # noqa: BLE001 - not a POSIX descriptor
                pass
        try:
            self.file.close(fmt.STATUS_CRASHED, last)
        except BaseException:  # noqa: BLE001
            pass

    def _drain(self, urgent: bool = False) -> list:
        """Write everything queued (batches first, then host rows); per-layer records only
        when their clock says so (or for a barrier, close or full queue), else they are held.
        Returns barriers met."""
        waiting, scalar_parts = [], []
        self._waiting = waiting   # released by _run, also if writing fails
        self._write_start = time.thread_time()
        self._wrote = self._wrote_records = False
        n = len(self.batches)
        for _ in range(n):
            item = self.batches.popleft()
            if isinstance(item, (Barrier, Close)):
                waiting.append(item)
                continue
            while not item.ready():   # poll the CUDA event: never a blocking sync
                time.sleep(0.0005)
            self._decode(item, scalar_parts, self._held)
        n = len(self.rows)
        if n:
            scalar_parts += host_tables([self.rows.popleft() for _ in range(n)])
        due = waiting or urgent or time.monotonic() >= self._records_due
        records = self._held if due else {}     # else they stay held for a later drain
        if not scalar_parts and not records:
            return waiting
        self._check_space(sum(p.nbytes for p in scalar_parts) * 7 // 8
                          + sum(v.nbytes for recs in records.values() for _, r in recs for v in r.values()))
        with self.lock:
            if not self.file.started:
                self._start_file()
            if self.file.needs_first_step:   # a resumed session's first write: readers supersede from here
                first = min([int(p[:, 0].min()) for p in scalar_parts if len(p)]
                            + [min(s for s, _ in recs) for recs in records.values() if recs], default=None)
                if first is not None:
                    self.file.set_first_step(first)
            if scalar_parts:
                table = np.concatenate(scalar_parts) if len(scalar_parts) > 1 else scalar_parts[0]
                n_tags = len(self.tag_names)
                if n_tags > self.file.n_tags:
                    self.file.add_tags(self.tag_names[self.file.n_tags:n_tags])
                self.file.append_scalars(table[:, 0], table[:, 1], table[:, 2], table[:, 3])
                self._last_step = max(self._last_step, int(table[:, 0].max()))
            for group, recs in records.items():
                steps = np.array([s for s, _ in recs], dtype=np.int64)
                fields = {k: np.stack([r[k] for _, r in recs]) for k in recs[0][1]}
                self.file.append_records(group, steps, fields)
                self._last_step = max(self._last_step, int(steps.max()))
        if records:
            self._held = {}
            self._wrote_records = True
        self._wrote = True
        return waiting

    def _check_space(self, incoming: int) -> None:
        """Stop before the disk (or the process's file size limit) is full.

        Measured with HDF5 2.0: when a write or flush fails because the file cannot grow,
        HDF5 can segfault the process (in that flush or at exit). So the writer refuses to
        write when less than a reserve is left, which turns a full disk into a warning.

        The disk is asked at most every SPACE_CHECK_S while the writes since the last answer
        stay within a sixteenth of the room it left above the reserve: the call lets the
        training thread take the GIL (~0.1 ms of writer time a check, measured under load),
        and the metrics' writes come many times a second.
        """
        now = time.monotonic()
        self._unchecked += incoming
        if now >= self._space_checked + SPACE_CHECK_S or self._unchecked >= self._room:
            directory = self.file.path.parent
            try:
                st = os.statvfs(directory)
            except FileNotFoundError:   # the run's folder was deleted: the open file's file system (trial 18 A4)
                st = os.fstatvfs(self.file.f.id.get_vfd_handle())
            free = st.f_bavail * st.f_frsize
            # at most an eighth of the whole filesystem: a 60 MB scratch space (Docker's /dev/shm is
            # 64 MB) recorded nothing against a fixed 64 MiB reserve
            total = getattr(st, "f_blocks", 0) * st.f_frsize
            floor = min(self.min_free_bytes, total // 8) if total > 0 else self.min_free_bytes
            reserve = max(floor, 8 * incoming)
            if free < reserve:
                raise OSError(f"disk almost full: {free / 2**20:.1f} MiB free in {directory}, "
                              f"the recorder keeps {reserve / 2**20:.0f} MiB in reserve")
            self._space_checked, self._unchecked, self._room = now, 0, (free - reserve) // 16
        if resource is not None:
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if limit != resource.RLIM_INFINITY:
                size = os.fstat(self.file.f.id.get_vfd_handle()).st_size   # the open file: its path may be gone
                if size + max(1 << 20, 8 * incoming) > limit:
                    raise OSError(f"file size limit (RLIMIT_FSIZE) of {limit} bytes almost reached "
                                  f"({size} bytes written)")

    def _decode(self, batch: DeviceBatch, scalar_parts: list, records: dict) -> None:
        """Each staged tensor's values go to the record spec that staged it (records/)."""
        rows = []
        for host, _, placed in batch.parts:
            values = host if type(host) is np.ndarray else host.numpy()
            for spec, step, wall, arg, off, n in placed:
                fields = spec.unpack(values[off:off + n], arg, step, wall, rows)
                if fields is not None:
                    records.setdefault(spec.group, []).append((step, fields))
        if rows:
            scalar_parts.append(np.array(rows, dtype=np.float64).reshape(-1, 4))

    def _next_timeout(self) -> float:
        """How long to sleep: until the gap is over if more is queued or values were just
        written, else until the heartbeat (or until held records are due)."""
        until_heartbeat = self._last_flush + self.flush_every - time.monotonic()
        if self._held:
            until_heartbeat = min(until_heartbeat, self._records_due - time.monotonic())
        if self.rows or self.batches or self._wrote:
            # Also after a write with nothing queued yet: while values flow (a training loop),
            # look again when the gap is over instead of being woken by the next log() and going
            # back to sleep until then (a wake saved per write; each costs the training thread
            # the GIL, and the writer wakes cold). Nothing there then: idle, as below.
            self.idle = False       # it wakes at the gap's end whatever log() does meanwhile
            return min(until_heartbeat, self._last_flush + self._gap - time.monotonic())
        # Say "idle" first, then look at the queue again: a log() that queued a value just
        # before saw idle == False and did not wake us, so we must see its value here.
        self.idle = True
        if self.rows or self.batches:
            self.idle = False
            return min(until_heartbeat, self._last_flush + self._gap - time.monotonic())
        return until_heartbeat

    def _flush(self, wrote: bool, start: bool = False) -> None:
        """``start``: a barrier or close waits, a deferred layout starts now (flush() promises a
        readable file)."""
        with self.lock:
            if not self.file.started and self._pending is not None and (
                    start or time.monotonic() >= self._pending_until):
                self._start_file()      # the deferred layout waited long enough: readers see a live run
            if not self.file.started:   # no layout yet (watch() to come): nothing to flush
                self._last_flush = time.monotonic()
                return
            dropped = self.dropped
            if dropped > self._dropped_written:
                self.file.add_dropped(dropped - self._dropped_written)
                self._dropped_written = dropped
            self.file.flush(self._last_step if self._last_step >= 0 else None)
        self._last_flush = time.monotonic()
        if wrote:   # costly writes: fewer, larger flushes, so the writer's share of a core stays small
            # CPU time (a busy machine is no reason); the median ignores one-offs
            cost = time.thread_time() - self._write_start
            if self._wrote_records:
                self._records_due = self._last_flush + _gap(self._record_costs, cost, RECORD_COST_FACTOR,
                                                            self.flush_every)
            else:
                self._gap = _gap(self._costs, cost, FLUSH_COST_FACTOR, self.flush_every)
