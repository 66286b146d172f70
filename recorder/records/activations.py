"""Output statistics of every leaf module (group ``acts``, format.ACT_FIELDS), from the first
training-mode forward of every ``stats_every``-th step: forward hooks on the leaves are added
for the scheduled steps only (kept from one to the next when consecutive steps are due), so
the forwards of other steps cost nothing."""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import format as fmt
from ..device_stats import RAW_NAN, activation_raw, activation_rows, output_tensor
from ..hooks import RecorderHook, in_functorch_transform, leave_out_of_copies
from ..host_stats import activation_row
from ..layout import output_bounds
from .base import Record


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
        self._reused = set()       # leaves seen running twice in one forward (said once)

    def forward_start(self, step, args, kwargs):
        self._capture = [None] * len(self.leaves)
        self._step = step
        if self.w.compiled or self._handles:
            return   # see Watched.compiled: no leaf hooks on a torch.compile'd model
        for i, m in enumerate(self.leaves):
            if i != self.root:
                leave_out_of_copies(m)
                self._handles.append(m.register_forward_hook(RecorderHook(self._leaf_hook(i))))

    def _leaf_hook(self, i):
        def hook(module, args, output):
            cap = self._capture
            if cap is None or not module.training:
                return
            if cap[i] is None:
                if not in_functorch_transform():
                    self.w.guard(self._store_leaf, cap, i, output, module)
            elif i not in self._reused:
                self._reused.add(i)     # looked at once: its later calls go unmeasured
                if next(module.parameters(recurse=False), None) is not None:
                    return   # a cell unrolled over time (LSTMCell) is one layer by design
                # a shared activation (super_resolution's self.relu): 92 % dead at its 2nd call went unreported
                name = self.w.layout.names.get(id(module), i)
                self.w.link.warn_once("<watch>", f"{type(module).__name__} module '{name}' runs more than once per "
                                                 "forward (one module shared between layers): its activation "
                                                 "statistics are those of its first call; give each use a module of "
                                                 "its own to have each judged")
        return hook

    def _store_leaf(self, cap, i, output, module):
        """``_store`` for one leaf; a failure leaves that leaf out, not every instrument: a module
        returning a kind of tensor the statistics do not know cost the gradient norms, weights,
        histograms and snapshots of every layer for the rest of the run (trial 14)."""
        try:
            self._store(cap, i, output)
        except (MemoryError, torch.OutOfMemoryError):
            raise           # the instruments go off: the next leaf would fail the same way
        except Exception as exc:  # noqa: BLE001 - this leaf only
            cap[i] = False
            name = self.w.layout.names.get(id(module), i)
            self.w.link.warn_once(f"<acts {name}>", f"activation statistics of {type(module).__name__} module '{name}' "
                                                    f"failed ({type(exc).__name__}: {exc}); that module is left out, "
                                                    "the other instruments go on")

    def _store(self, cap, i, output):
        """cap[i]: the statistics of leaf i's output, taken now (an in-place module may change
        it later): a host row (list) on the CPU fast path, a device raw (tuple) otherwise,
        False without a floating-point output."""
        bounds = self.bounds[i]
        plain = type(output) is torch.Tensor          # nearly every output: no subclass to unwrap
        reusable = plain or isinstance(output, torch.Tensor)
        # Dropout(p=0) (nanoGPT's default), Identity: the very tensor an earlier leaf of this
        # forward returned, unchanged since (same version) and judged by the same bounds.
        seen = self._seen.get(id(output)) if reusable else None
        if seen is not None and seen[0] is output and seen[1:3] == (output._version, bounds):
            cap[i] = seen[3]
            return
        if plain and self.w.cpu_fast_path and output.is_cpu and output.dtype is torch.float32 \
                and output.layout is torch.strided and not output.is_nested:
            # output_tensor()'s checks and detach() left out: each torch call here costs a few
            # microseconds per leaf and step, and the host statistics only read the values
            cap[i] = activation_row(output, bounds) if output.numel() else False
        else:
            x = output_tensor(output)
            if x is None:
                cap[i] = False
            elif self.w.cpu_fast_path and x.is_cpu:
                cap[i] = activation_row(x, bounds)
            else:
                cap[i] = activation_raw(x, bounds)
        if reusable and cap[i] is not False and not output.is_inference():   # (no _version then)
            self._seen[id(output)] = (output, output._version, bounds, cap[i])

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
        rows = self.compute(cap)
        if rows is not None:
            self.emit(rows, step, time.time(), len(cap))

    def remove(self):
        self._remove_hooks()
        self._finished = self._capture = None
        self._seen = {}

    def release(self):
        self.remove()

    def compute(self, cap):
        if not any(cap):
            return None
        nan_row = [math.nan] * len(fmt.ACT_FIELDS)
        if not any(isinstance(c, tuple) for c in cap):   # all on the host: one array of floats
            return np.array([c if c else nan_row for c in cap], np.float32)
        rows = activation_rows([c if isinstance(c, tuple) else RAW_NAN for c in cap])
        host = [i for i, c in enumerate(cap) if isinstance(c, list)]
        if host:   # a model partly on the CPU: its host rows join the device ones
            rows[host] = torch.tensor([cap[i] for i in host], dtype=torch.float32).to(rows.device, non_blocking=True)
        return rows

    def unpack(self, values, arg, step, wall, rows):
        m = values.reshape(arg, len(fmt.ACT_FIELDS))
        return {name: m[:, i] for i, name in enumerate(fmt.ACT_FIELDS)}
