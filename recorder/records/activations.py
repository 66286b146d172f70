"""Output statistics of every leaf module (group ``acts``, format.ACT_FIELDS), from the first
training-mode forward of every ``stats_every``-th step: forward hooks on the leaves are added
for the scheduled steps only (kept from one to the next when consecutive steps are due), so
the forwards of other steps cost nothing.

On the CPU fast path a hook only copies the output (an in-place module after the leaf may
change it) into a pooled buffer (deferred.Copies); the writer thread computes the statistics
(host_stats.activation_row, the same values) in ``unpack``. When the pool refuses (the writer
is behind), the hook computes them itself, as before."""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import format as fmt
from ..deferred import ALIGN, Copies
from ..device_stats import RAW_NAN, activation_raw, activation_rows, output_tensor
from ..host_stats import activation_row
from ..layout import output_bounds
from .base import Record
from .host_copies import EMPTY, same_threads


NAN_ROW = [math.nan] * len(fmt.ACT_FIELDS)


class _Capture(list):
    """Per leaf: a host row (list), a device raw (tuple), a _Deferred, False (no floating-point
    output) or None (not run). ``copies``: the buffers of its _Deferred entries."""
    __slots__ = ("copies", "threads")

    def __init__(self, n):
        super().__init__([None] * n)
        self.copies = None
        self.threads = 1       # torch's threads on the training thread: its sums' order


class _Deferred:
    """A leaf output copied for the writer thread, and its host row once computed."""
    __slots__ = ("a", "bounds", "row")

    def __init__(self, a, bounds):
        self.a, self.bounds, self.row = a, bounds, None


def _flat_view(x) -> bool:
    """Is ``x.reshape(-1)`` of this non-contiguous tensor a strided view (not a copy)?"""
    dims = [(n, s) for n, s in zip(x.shape, x.stride()) if n != 1]
    return all(s == s2 * n2 for (_, s), (n2, s2) in zip(dims, dims[1:]))


class Activations(Record):
    group = fmt.ACTS
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.leaves = watched.layout.leaves
        self.bounds = [output_bounds(m) for m in self.leaves]
        self.root = next((i for i, m in enumerate(self.leaves) if m is watched.model), None)
        self._capture = None       # per-leaf stats of the forward being captured
        self._finished = None      # ... of the forward that just ended
        self._handles = []
        self._step = -1            # step of the forward being captured
        self._seen = {}            # id(output) -> (output, its version, bounds, cap entry) this forward
        self._hint = 0             # elements the last forward's copies took

    def forward_start(self, step, args, kwargs):
        self._capture = _Capture(len(self.leaves))
        self._step = step
        if self.w.compiled or self._handles:
            return   # see Watched.compiled: no leaf hooks on a torch.compile'd model
        for i, m in enumerate(self.leaves):
            if i != self.root:
                self._handles.append(m.register_forward_hook(self._leaf_hook(i)))

    def _leaf_hook(self, i):
        def hook(module, args, output):
            cap = self._capture
            if cap is not None and cap[i] is None and module.training:
                self.w.guard(self._store, cap, i, output)
        return hook

    def _store(self, cap, i, output):
        """cap[i]: the statistics of leaf i's output, taken now (an in-place module may change
        it later): on the CPU fast path a copy for the writer (_Deferred) or a host row (list),
        a device raw (tuple) otherwise, False without a floating-point output."""
        reusable = isinstance(output, torch.Tensor) and not output.is_inference()
        if reusable:
            # Dropout(p=0) (nanoGPT's default), Identity: the very tensor an earlier leaf of this
            # forward returned, unchanged since (same version) and judged by the same bounds.
            seen = self._seen.get(id(output))
            if seen is not None and seen[0] is output and seen[1:3] == (output._version, self.bounds[i]):
                cap[i] = seen[3]
                return
        x = output_tensor(output)
        if x is None:
            cap[i] = False
        elif self.w.cpu_fast_path and x.device.type == "cpu":
            cap[i] = self._copy(cap, x, self.bounds[i]) or activation_row(x, self.bounds[i])
        else:
            cap[i] = activation_raw(x, self.bounds[i])
        if reusable and cap[i] is not False:
            self._seen[id(output)] = (output, output._version, self.bounds[i], cap[i])

    def _copy(self, cap, x, bounds):
        """A _Deferred copy of ``x`` laid out as activation_row's ``x.reshape(-1)`` (same
        address modulo ALIGN: the same sums), or None: compute now."""
        if x.is_contiguous():
            align = x.data_ptr() % ALIGN
        elif _flat_view(x):
            return None      # reshape gives a strided view: torch sums it in another order
        else:
            align = 0        # reshape copies it into a fresh tensor
        if cap.copies is None:
            cap.copies = Copies(self.w.pool, self._hint)
        a = cap.copies.copy(x.numpy(), align)
        return None if a is None else _Deferred(a, bounds)

    def forward_detach(self):
        # The hooks stay while the next step is due too (they do nothing between captures):
        # adding and removing them each step cost ~6 us a leaf.
        if not (self.w.enabled and self.due(self._step + 1)):
            self._remove_hooks()
        self._finished, self._capture = self._capture, None
        self._seen = {}

    def _remove_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def forward_end(self, step, output):
        cap, self._finished = self._finished, None
        if cap is None:
            return
        if self.root is not None:
            self._store(cap, self.root, output)
        if cap.copies is not None:
            self._hint = cap.copies.next_hint()
            cap.threads = torch.get_num_threads()
            if any(type(c) is _Deferred for c in cap):
                if not any(type(c) is tuple for c in cap):   # all on the host: rows on the writer
                    self.emit(EMPTY, step, time.time(), cap)
                    return
                cap[:] = self.host_rows(cap)    # a model partly on an accelerator: rows now
            cap.copies.release()
        rows = self.compute(cap)
        if rows is not None:
            self.emit(rows, step, time.time(), len(cap))

    def remove(self):
        self._remove_hooks()
        self._finished = self._capture = None
        self._seen = {}

    def compute(self, cap):
        if not any(cap):
            return None
        if not any(isinstance(c, tuple) for c in cap):   # all on the host: one tensor of floats
            return torch.from_numpy(np.array([c if c else NAN_ROW for c in cap], np.float32))
        rows = activation_rows([c if isinstance(c, tuple) else RAW_NAN for c in cap])
        host = [i for i, c in enumerate(cap) if isinstance(c, list)]
        if host:   # a model partly on the CPU: its host rows join the device ones
            rows[host] = torch.tensor([cap[i] for i in host], dtype=torch.float32).to(rows.device, non_blocking=True)
        return rows

    @staticmethod
    def host_rows(cap) -> list:
        """The capture's rows, those of its _Deferred entries computed now (each once: a
        reused output shares its entry); the copies go back to the pool, also on errors."""
        try:
            same_threads(cap)     # the training thread's count: the same sums
            for c in cap:
                if type(c) is _Deferred and c.row is None:
                    c.row = activation_row(torch.from_numpy(c.a), c.bounds)
            return [c.row if type(c) is _Deferred else c for c in cap]
        finally:
            cap.copies.release()

    def discard(self, arg):
        if type(arg) is _Capture:
            arg.copies.release()

    def unpack(self, values, arg, step, wall, rows):
        if type(arg) is _Capture:    # the writer computes the copied outputs' rows
            m = np.array([c if c else NAN_ROW for c in self.host_rows(arg)], np.float32)
        else:
            m = values.reshape(arg, len(fmt.ACT_FIELDS))
        return {name: m[:, i] for i, name in enumerate(fmt.ACT_FIELDS)}
