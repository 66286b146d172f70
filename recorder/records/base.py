"""What every record spec is, and the watched model as the specs see it.

A record spec owns one kind of recorded data end to end: the file group and fields it fills
(declared in ``format.RECORD_GROUPS``; ``None`` for scalar rows only), its schedule (the
``Recorder`` setting that gives its period), the device-side ``compute()`` and the writer-side
``unpack()`` of the flat float values that reached the host. ``Instruments`` (the hooks) calls
a spec at the moments it implements; adding an instrument is one spec file plus one line in
``registry.py``.

No torch import here: the writer thread and ``Recorder.log()`` use ``ScalarValue`` before
``watch()``, and ``from trainspect import Recorder`` must not import torch.
"""
from __future__ import annotations

import math

from .. import format as fmt


def due(step: int, every, dense_start: int = 0) -> bool:
    """Is a spec with period ``every`` (0 = never) recorded at ``step``? Also on every step
    below ``dense_start`` (see ``Record.dense_start``)."""
    return bool(every) and (step < dense_start or step % every == 0)


class Watched:
    """The watched model, its optimizer and the recorder link, shared by every spec."""

    def __init__(self, link, model, optimizer, layout, scaler=None):
        self.link = link                   # the recorder's narrow interface (recorder/link.py)
        self.model = model
        self.optimizer = optimizer         # None: statistics are taken at log() calls
        self.layout = layout               # layout.ModelLayout
        self.params = layout.param_tensors
        self.P = len(self.params)
        self.scaler = scaler               # amp.ScalerWatch or None
        # watch(torch.compile(model)): leaf hooks added at scheduled steps make dynamo recompile
        # (a stall of seconds, each time) and run traced on fake tensors; measured: no usable
        # activation records either way. Such models get no `acts` (FORMAT.md, torch.compile).
        # Also inside a wrapper: nanoGPT runs DDP(torch.compile(model)), where leaf hooks made
        # dynamo recompile up to its limit (8 compiles) on the first stats step.
        self.compiled = any(type(m).__name__ == "OptimizedModule" and hasattr(m, "_orig_mod")
                            for m in model.modules())
        self.enabled = True                # False once an instrument failed (or the writer did)
        self.cpu_fast_path = not link.device_path   # off: the GPU code path, also for CPU tensors (tests)
        self._consts = {}                  # device -> (NaN, -1.0) 0-d tensors
        self.one_device = len({p.device for p in self.params}) <= 1   # see to_one
        self.other_optimizers = False      # another optimizer steps parameters of this model
        from ..hooks import HookSet        # imports torch: not at this module's import
        self.hooks = HookSet()             # every long-lived hook of this watch (pause/resume)
        import torch

        # torch.no_grad() as a context costs ~2.5 us a call, these two ~0.1 us (guard runs ~25x a step)
        self._grad_enabled, self._set_grad = torch.is_grad_enabled, torch._C._set_grad_enabled

    def guard(self, fn, *args):
        """Run a spec's device work; an exception switches the instruments off, never training."""
        if not self.enabled:
            return
        was = self._grad_enabled()
        self._set_grad(False)          # torch.no_grad()
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - an instrument must never stop training
            self.link.failed(exc)
        finally:
            self._set_grad(was)

    def const(self, device):
        """(NaN, -1.0) as 0-d tensors on ``device``, made once: fillers for missing values."""
        c = self._consts.get(device)
        if c is None:
            import torch

            c = self._consts[device] = (torch.full((), math.nan, device=device), torch.full((), -1.0, device=device))
        return c

    def to_one(self, tensors):
        """Move results of a model spread over devices to the first one (async copies).
        A model on one device (nearly all) skips the per-tensor check: P ``.device`` reads a
        step, paid on the host of a launch-bound GPU loop. The first and last results are
        still compared, so a model split over devices after watch() is still handled."""
        if self.on_one_device(tensors):
            return tensors
        device = tensors[0].device
        return [t if t.device == device else t.to(device, non_blocking=True) for t in tensors]

    def on_one_device(self, tensors) -> bool:
        """Are these per-parameter tensors on one device (see ``to_one``)?"""
        return self.one_device and tensors[-1].device == tensors[0].device


class Record:
    """One kind of recorded data. Subclasses set the class attributes and implement the
    moments they need; the default moments do nothing (and are never called)."""

    group: str | None = None   # record group in the file (format.RECORD_GROUPS); None: scalar rows
    schedule: str | None = None   # "stats_every", "hist_every", "snapshot_every"; None: every step
    wide = False               # travel to the host as float64 (counts beyond 2**24, float64 values)
    # Also due on each of the first ``dense_start`` steps (Recorder(dense_start=100) for the
    # stats_every specs): a 60-step run or a NaN at step 3 is covered, whatever the period.
    dense_start = 0
    # Also due at the first step it is asked about: hists and snapshots (every 200 steps) of
    # a run counting from 1 (the HF Trainer, Lightning) came at step 200 at the earliest, so a
    # short run had none. Only for specs whose due() is asked about the step itself.
    first_due = False
    _first = None

    def __init__(self, watched: Watched, every: int = 1):
        self.w = watched
        self.every = every

    @classmethod
    def wanted(cls, watched: Watched) -> bool:
        """Does this watch() need the spec at all (e.g. only with an optimizer, a scaler, CUDA)?"""
        return True

    @property
    def fields(self) -> dict:
        """Field name -> stored dtype of this spec's record group."""
        return fmt.RECORD_GROUPS[self.group] if self.group else {}

    def due(self, step: int) -> bool:
        if self.first_due and self._first is None:
            self._first = step
        return due(step, self.every, self.dense_start) or (step == self._first and bool(self.every))

    # ------------------------------------------------------------ moments (training thread)
    def before_step(self, step: int, wall: float, closure: bool) -> None:
        """Optimizer pre-step hook (``closure``: step(closure), gradients come later)."""

    def after_step(self, step: int, wall: float, closure: bool) -> None:
        """Optimizer post-step hook."""

    def at_log(self, step: int, wall: float) -> None:
        """A log() call when no optimizer is watched (its statistics are taken there)."""

    def skipped_step(self, step: int, wall: float) -> None:
        """A GradScaler skipped the optimizer step (inf/NaN gradients)."""

    def scaler_found(self) -> None:
        """A GradScaler watch() was not given stepped the optimizer for the first time: it is
        ``self.w.scaler`` from now on (amp.route_scaler_steps), before this step's optimizer runs."""

    def other_optimizer_step(self, step: int, wall: float) -> None:
        """Another optimizer that holds parameters of the watched model is about to step, before
        the watched one in this iteration (Muon beside AdamW, SAM around its base optimizer)."""

    def flush(self) -> None:
        """``Recorder.flush()``: emit what the spec holds for later (everything logged is written)."""

    def training_forward(self) -> None:
        """A training-mode forward that tracks gradients begins (every one, due or not; the
        watched optimizer's iteration has ended). Called unguarded (it runs at every forward):
        a spec with work to do runs it through ``self.w.guard``."""

    def forward_start(self, step: int, args, kwargs) -> None:
        """The first training-mode forward of a step where this spec is due begins."""

    def forward_end(self, step: int, output) -> None:
        """That forward ended (only called if forward_start was)."""

    def forward_detach(self) -> None:
        """That forward ended: drop per-forward hooks (called even with the instruments off)."""

    def remove(self) -> None:
        """Unwatch: remove hooks the spec installed itself."""

    def release(self) -> None:
        """Drop the memory the spec holds between calls (copies, captures): the instruments were
        switched off after a failure, maybe an out-of-memory, and training goes on without them."""

    # ------------------------------------------------------------ device -> writer
    def compute(self, *args):
        """The device tensor of one record (no host reads), or None."""
        raise NotImplementedError

    def emit(self, tensor, step: int, wall: float, arg) -> None:
        """Stage a computed tensor for the next batched device->host copy."""
        self.w.link.stage(tensor, self, step, wall, arg, self.wide)

    def unpack(self, values, arg, step: int, wall: float, rows: list):
        """Writer thread: the flat host ``values`` of one emitted tensor (``arg`` as emitted) ->
        ``{field: array}`` of one record of ``group`` (or None); scalar rows
        ``(step, tag, value, wall)`` are appended to ``rows``."""
        raise NotImplementedError
