"""Output statistics of every leaf module (group ``acts``, format.ACT_FIELDS), from the first
training-mode forward of every ``stats_every``-th step: forward hooks on the leaves are added
for the scheduled steps only (kept from one to the next when consecutive steps are due), so
the forwards of other steps cost nothing.

A leaf without parameters called several times per forward (super_resolution's one ``self.relu``
after every conv; torchvision's ResNet blocks) is several layers: its 2nd, 3rd... call (up to
``MAX_CALLS``) get rows of their own, ``<name>#2``, ``<name>#3``, found at the first training
forward (watch() lets the layer tables wait for it, see Recorder.watch) and placed after the leaf
that ran just before them. Every later forward measures call k in row ``#k``: names are stable.
Calls that no row measures (beyond the rows, or every later call when the tables had to start
before a training forward showed them) are said in one warning per run, not one per module.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import format as fmt
from ..device_stats import RAW_NAN, activation_raw, activation_rows, output_tensor
from ..hooks import RecorderHook, in_functorch_transform, leave_out_of_copies
from ..host_stats import activation_row
from ..layout import MAX_CALLS, fit_name, output_bounds, per_call_rows
from .base import Record


# MAX_CALLS: calls of one shared parameter-free leaf measured per forward (an activation shared
# by every block of a 48-layer model would otherwise add 47 rows); the rows all of them may add:
MAX_EXTRA_ROWS = 512


class Activations(Record):
    group = fmt.ACTS
    schedule = "stats_every"

    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.leaves = watched.layout.leaves
        self.shareable = watched.layout.shareable
        self.bounds = [output_bounds(m) for m in self.leaves]     # per row (a later call: its leaf's)
        self.root_leaf = next((i for i, m in enumerate(self.leaves) if m is watched.model), None)
        self.root = self.root_leaf   # its row
        self.first_row = list(range(len(self.leaves)))   # leaf -> row of its first call
        self.later_rows = {}       # (leaf, call number >= 2) -> row
        self._learn = watched.link.layout_waits   # the first captured forward completes the layout
        self._calls = {}           # leaf -> calls so far in the forward being captured (from the 2nd)
        self._order = []           # (leaf, call) in call order, while learning
        self._later = {}           # (leaf, call) -> its statistics, while learning
        self._capture = None       # per-row stats of the forward being captured
        self._finished = None      # ... of the forward that just ended
        self._handles = []
        self._step = -1            # step of the forward being captured
        self._seen = {}            # id(output) -> (output, its version, bounds, cap entry) this forward
        self._unmeasured = {}      # leaf -> most calls seen in a forward, where some had no row
        self._said_unmeasured = False   # one summary warning per run, not one per module
        self._rows_per_call = False     # the tables got their #k rows from a training forward
        kept = watched.link.kept_modules
        if kept is not None and len(kept) != len(self.leaves):
            self._keep_rows(kept)

    def _keep_rows(self, kept):
        """A resumed run whose first session gave later calls rows of their own: measure them
        in those rows (the layout of this session is the file's)."""
        where = per_call_rows(self.w.layout.layout.modules, kept)
        if where is None:
            return      # (watch() found the layouts different and records no layers)
        self.first_row[:] = [where[(i, 1)] for i in range(len(self.leaves))]
        self.later_rows = {key: row for key, row in where.items() if key[1] > 1}
        bounds = [None] * len(kept)
        for (i, _), row in where.items():
            bounds[row] = self.bounds[i]
        self.bounds = bounds
        if self.root_leaf is not None:
            self.root = self.first_row[self.root_leaf]
        self._rows_per_call = True

    def forward_start(self, step, args, kwargs):
        self._capture = [None] * len(self.bounds)
        self._calls = {}
        self._step = step
        if self.w.compiled or self._handles:
            return   # see Watched.compiled: no leaf hooks on a torch.compile'd model
        for i, m in enumerate(self.leaves):
            if i != self.root_leaf:
                leave_out_of_copies(m)
                self._handles.append(m.register_forward_hook(RecorderHook(self._leaf_hook(i))))

    def _leaf_hook(self, i):
        first_row = self.first_row

        def hook(module, args, output):
            cap = self._capture
            if cap is None or not module.training:
                return
            row = first_row[i]
            if cap[row] is None:
                if self._learn:
                    self._order.append((i, 1))
                if not in_functorch_transform():
                    self.w.guard(self._store_leaf, cap, row, output, module)
            else:
                self._later_call(cap, i, module, output)
        return hook

    def _later_call(self, cap, i, module, output):
        """Leaf ``i`` runs again in this forward: measured in its ``#k`` row if it has one."""
        k = self._calls[i] = self._calls.get(i, 1) + 1
        row = self.later_rows.get((i, k))
        if row is not None:
            if cap[row] is None and not in_functorch_transform():
                self.w.guard(self._store_leaf, cap, row, output, module)
            return
        if self._learn and i in self.shareable and k <= MAX_CALLS:
            self._order.append((i, k))
            if not in_functorch_transform():
                one = [None]
                self.w.guard(self._store_leaf, one, 0, output, module, self.bounds[i])
                self._later[(i, k)] = one[0]
            return
        if self._learn or i not in self.shareable:
            return       # (a cell unrolled over time, LSTMCell, is one layer by design)
        if k > self._unmeasured.get(i, 0):
            self._unmeasured[i] = k     # said once for all such modules, when the forward ends

    def _say_unmeasured(self):
        """One warning for the run: which shared modules had calls no row measured, and why.
        No advice to edit the model: torchvision's blocks reuse ``self.relu``, a seq2seq decoder
        its dropout at every time step, a siamese twin its whole branch, all by design."""
        self._said_unmeasured = True
        from ..recorder import SHARED_CALLS_WAIT

        rows = {}
        for i, _ in self.later_rows:
            rows[i] = rows.get(i, 1) + 1
        leaves = sorted(self._unmeasured, key=lambda i: self.first_row[i])
        n = f"{len(leaves)} module{'s' if len(leaves) > 1 else ''}"
        if self._rows_per_call:
            text = (f"{n} ran more times in a forward than the per-call activation rows cover "
                    f"({self._list(leaves, rows)}): the calls beyond the rows are not measured (rows are made at the "
                    f"first training forward, for at most {MAX_CALLS} calls of a module and "
                    f"{MAX_EXTRA_ROWS} rows in all)")
        else:
            why = ("a resumed run keeps the layer rows of its first session" if self.w.link.resumed else
                   "the layer tables had to start before a training forward showed the calls (none came "
                   f"within {SHARED_CALLS_WAIT:.0f} s of watch(), or a flush() came first); watch() shortly "
                   "before the training loop gives each call a row of its own")
            text = (f"{n} called several times per forward (used at several places) "
                    f"{'have' if len(leaves) > 1 else 'has'} one activation row, that of the first call "
                    f"({self._list(leaves, rows)}): {why}")
        self.w.link.warn_once("<watch>", text)

    def _list(self, leaves, rows, most=4):
        names = self.w.layout.names
        said = []
        for i in leaves[:most]:
            n = rows.get(i, 1)
            said.append(f"'{names.get(id(self.leaves[i]), i)}' ({type(self.leaves[i]).__name__}, "
                        f"{self._unmeasured[i]} calls, {n} row{'s' if n > 1 else ''})")
        return ", ".join(said) + (f" and {len(leaves) - most} more" if len(leaves) > most else "")

    def _store_leaf(self, cap, i, output, module, bounds=None):
        """``_store`` for one leaf; a failure leaves that leaf out, not every instrument: a module
        returning a kind of tensor the statistics do not know cost the gradient norms, weights,
        histograms and snapshots of every layer for the rest of the run (trial 14)."""
        try:
            self._store(cap, i, output, bounds)
        except (MemoryError, torch.OutOfMemoryError):
            raise           # the instruments go off: the next leaf would fail the same way
        except Exception as exc:  # noqa: BLE001 - this leaf only
            cap[i] = False
            name = self.w.layout.names.get(id(module), i)
            self.w.link.warn_once(f"<acts {name}>", f"activation statistics of {type(module).__name__} module '{name}' "
                                                    f"failed ({type(exc).__name__}: {exc}); that module is left out, "
                                                    "the other instruments go on")

    def _store(self, cap, i, output, bounds=None):
        """cap[i]: the statistics of row i's output, taken now (an in-place module may change
        it later): a host row (list) on the CPU fast path, a device raw (tuple) otherwise,
        False without a floating-point output."""
        if bounds is None:
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
        if self._unmeasured and not self._said_unmeasured:
            self._say_unmeasured()

    def _remove_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def forward_end(self, step, output):
        cap, self._finished = self._finished, None
        if cap is None:
            return
        if self._learn:
            cap = self._complete_layout(cap)
        if self.root is not None:
            self._store(cap, self.root, output)
        rows = self.compute(cap)
        if rows is not None:
            self.emit(rows, step, time.time(), len(cap))

    def _complete_layout(self, cap):
        """The first captured training forward ended: start the layer tables with a row for each
        later call it saw of a shared leaf, placed after the row of the call that ran before it
        (conv1, relu, conv2, relu#2, ...). Returns this forward's statistics in the final rows."""
        self._learn = False
        order, later = self._order, self._later
        self._order, self._later = [], {}
        modules = list(self.w.layout.layout.modules)
        keys = [(i, 1) for i in range(len(self.leaves))]
        pos = {key: n for n, key in enumerate(keys)}
        extra = [key for key in order if key[1] > 1][:MAX_EXTRA_ROWS]
        before = {b: a for a, b in zip(order, order[1:])}
        for key in extra:
            after = before.get(key)
            if after not in pos:
                after = (key[0], key[1] - 1)
            at = pos[after] + 1
            keys.insert(at, key)
            pos = {k: n for n, k in enumerate(keys)}
        if not extra:
            self._rows_per_call = self.w.link.start_layout(None) is True
            return cap
        rows = [modules[i] if k == 1 else (fit_name(f"{modules[i][0]}#{k}"), modules[i][1]) for i, k in keys]
        if not self.w.link.start_layout(rows):
            return cap    # started as watch() left it: later calls are said unmeasured (_later_call)
        self._rows_per_call = True
        self.first_row[:] = [pos[(i, 1)] for i in range(len(self.leaves))]
        self.later_rows = {key: pos[key] for key in extra}
        self.bounds = [self.bounds[i] for i, _ in keys]
        if self.root is not None:
            self.root = pos[(self.root, 1)]
        return [cap[i] if k == 1 else later.get((i, k)) for i, k in keys]

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

