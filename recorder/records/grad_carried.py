"""Updates that used a gradient still holding the previous update's (``sys/grad_carried``):
``zero_grad()`` missing, or a hand-written ``w -= lr * w.grad`` without ``w.grad.zero_()``.

Read from the loss curve alone this looks like a too-high LR (every update adds all the earlier
gradients again), and lowering the LR does not cure it; measured directly it is certain. One
parameter is the probe (the last one the watched optimizer steps, usually the output bias): a
hook that runs before each backward adds into its ``.grad`` notes whether the gradient was reset
since the last update. ``None`` there (``zero_grad()``'s default) is read on the host for free;
only a gradient that stayed a tensor (``zero_grad(set_to_none=False)``, ``.zero_()``, or none)
costs a device check, ``any(grad != 0)`` on the probe, kept on the device. An update is an
optimizer step, or without a watched optimizer an in-place change of the probe between two
``log()`` calls (its version counter). A row for each update whose gradient stayed a tensor:
1 = it still held the previous update's gradient, 0 = zeroed in place; none for a reset to
``None`` (the common case: ~5 us a step less on the host of a launch-bound GPU loop). The
series is named at watch(), so a run without rows says "measured: always reset".

Parameters changed through ``.data`` (pytorch/examples' word_language_model: ``p.data.add_(p.grad,
alpha=-lr)``) do not move the version counter: without a watched optimizer, a step (one ``log()``
iteration) whose probe changed all the same is an update too. That is read from a copy of the
probe's first ``PROBE_HEAD`` elements taken at each step: on the host for a CPU model, on the
device otherwise (the row is ``carried & changed``, staged like every record: no sync). Dropping
``model.zero_grad()`` from that loop was not seen and the loss, 5.6 % worse, read "raise the LR
10x" (trial 18 U12).
"""
from __future__ import annotations

import torch

from .. import format as fmt
from .scalar import ScalarValues

PROBE_HEAD = 4096     # elements of the probe compared between steps for a change through .data


class GradCarried(ScalarValues):
    def __init__(self, watched, every=1):
        super().__init__(watched, every)
        self.probe = _probe(watched)
        self.tag = watched.link.tag(fmt.SYS_GRAD_CARRIED) if self.probe is not None else None
        self.handle = None
        self._reset_seen = False      # a backward since the last update found .grad None
        self._backwards = 0           # backwards since the last update
        self._nonzero = None          # device bool: every backward since found .grad nonzero
        self._host_nonzero = True     # the same, read on the host (CPU fast path)
        self._version = None          # the probe's version at the last update (no optimizer)
        self._in_place = False        # (no optimizer) the version moved once: updates are in place
        self._head = None             # (no optimizer) the probe's first elements at the last step
        self._first_reset = False     # (no optimizer) a reset to None came before the first log()
        if self.probe is not None:
            self.handle = self.probe.register_hook(watched.hooks.eager(self._before_accumulate))

    # ------------------------------------------------------------ training thread
    def _before_accumulate(self, grad_in) -> None:
        """The probe's gradient of this backward is about to be added into ``.grad``."""
        self._backwards += 1
        if self._reset_seen:
            return
        g = self.probe.grad
        if g is None:
            self._reset_seen = True
            return
        w = self.w
        if not w.enabled:
            return
        w.guard(self._check_nonzero, g)

    def _check_nonzero(self, g) -> None:
        if g.device.type == "cpu" and self.w.cpu_fast_path:
            self._host_nonzero = self._host_nonzero and bool(g.any())
            return
        nonzero = g.ne(0).any()
        self._nonzero = nonzero if self._nonzero is None else self._nonzero & nonzero

    def before_step(self, step, wall, closure):
        if not closure:     # step(closure): its backwards run inside the step
            self._verdict(step, wall)

    def after_step(self, step, wall, closure):
        if closure:
            self._verdict(step, wall)

    def at_log(self, step, wall):
        probe = self.probe
        if probe is None:
            return
        version = probe._version
        if self._version is None:
            self._version = version
            self._head = self._copy_head()
            # a reset to None before this first log() (gradient accumulation's first micro-batch)
            # covers the first update through .data, which may come steps later
            self._first_reset = self._reset_seen
            self._start_period()
        elif version != self._version:
            self._version, self._in_place = version, True
            self._verdict(step, wall)
        elif not self._in_place:
            self._changed_through_data(step, wall)

    def _copy_head(self):
        return self.probe.detach().reshape(-1)[:PROBE_HEAD].clone()

    def _changed_through_data(self, step, wall) -> None:
        """A step without an in-place change of the probe: was it changed through ``.data``?"""
        if self._first_reset:
            self._reset_seen, self._first_reset = True, False
        head, now = self._head, self._copy_head()
        if head is None or head.shape != now.shape or head.device != now.device:
            self._head = now
            self._start_period()
            return
        if now.device.type == "cpu" and self.w.cpu_fast_path:
            if torch.equal(head, now):
                return               # no update (gradient accumulation): the period goes on
            self._head = now
            self._verdict(step, wall)
            return
        # on the device: whether it changed is not known here; the row says carried & changed
        self._head = now
        try:
            if self._backwards and not self._reset_seen and self.w.enabled:
                changed = head.ne(now).any()
                carried = self._nonzero if self._nonzero is not None else torch.ones((), dtype=torch.bool,
                                                                                      device=now.device)
                self.emit((carried & changed).to(torch.float32).reshape(()), step, wall, self.tag)
        finally:
            self._start_period()

    def skipped_step(self, step, wall):
        self._start_period()       # the scaler skipped the update: nothing used these gradients

    def _verdict(self, step, wall) -> None:
        """The update at ``step`` used the probe's gradient: was it reset since the last one?"""
        try:
            if self._backwards and not self._reset_seen and self.w.enabled:
                if self._nonzero is not None:
                    self.emit(self._nonzero.to(torch.float32).reshape(()), step, wall, self.tag)
                else:
                    self.w.link.host_value(step, self.tag, float(self._host_nonzero), wall)
        finally:
            self._start_period()

    def _start_period(self) -> None:
        self._reset_seen, self._backwards = False, 0
        self._nonzero, self._host_nonzero = None, True

    def remove(self):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def release(self):
        self._nonzero = None
        self._head = None


def _probe(watched):
    """The parameter whose gradient is checked: the last trainable one the watched optimizer
    steps (the model's last trainable one without an optimizer)."""
    params = [p for p in watched.params if p.requires_grad and isinstance(p, torch.Tensor)]
    opt = watched.optimizer
    if opt is not None:
        stepped = {id(p) for g in opt.param_groups for p in g["params"]}
        params = [p for p in params if id(p) in stepped]
    return params[-1] if params else None
