"""The recorder as the instruments see it: a narrow interface instead of its private members.

The hooks and record specs need the step counter, metric tags, the host-value queue, the
device staging area and the recorder's warnings; nothing else of the ``Recorder``.
"""
from __future__ import annotations

import time


class RecorderLink:
    __slots__ = ("_rec", "host_value", "tag", "failed", "warn_once", "device_path", "held", "start_layout")

    def __init__(self, rec):
        self._rec = rec
        # Bound methods, not wrappers: host_value runs several times a step.
        self.host_value = rec._host_value    # (step, tag, value, wall): a host number
        self.tag = rec._tag                  # metric name -> tag id (created on first use)
        self.failed = rec._instrument_failed  # (exc): switch the instruments off, warn once
        self.warn_once = rec._warn_once      # (key, message)
        self.device_path = rec._device_path  # tests: take the GPU code path for CPU tensors
        self.start_layout = rec._start_layout  # (modules): start the layer tables watch() deferred
        self.held = None   # a list while a capture's records wait for the step (Instruments._held)

    @property
    def layout_waits(self) -> bool:
        """Do the layer tables wait for the first training forward (``start_layout``)?"""
        return self._rec._writer._pending is not None

    @property
    def resumed(self) -> bool:
        """Does this session continue a run file written before (its layer tables kept)?"""
        return self._rec._writer.file.resumed

    @property
    def kept_modules(self) -> list | None:
        """A resumed run's module rows [(name, type)], per-call rows included; None otherwise."""
        file = self._rec._writer.file
        return file.layout.modules if file.resumed else None

    @property
    def step(self) -> int:
        """The step an optimizer step now would record (0-based count of steps done)."""
        return self._rec._step

    def mark_forward(self) -> None:
        """A training-mode forward began: log(step=None) until the next step labels with it."""
        rec = self._rec
        rec._forward_step = rec._step
        rec._stepped_unseen = False

    def forward_without_optimizer(self) -> None:
        """A training-mode forward of a model watched without an optimizer: the first one after
        a log() begins the next step (see Recorder._logged_without_optimizer)."""
        rec = self._rec
        rec._forwards_count = True
        if rec._next_step is not None:
            rec._step, rec._next_step = rec._next_step, None

    def forward_in_compiled_code(self) -> None:
        """A training forward ran inside torch.compile'd code (a model compiled after watch()).
        Dynamo replays this constant store after each call of the compiled code, where reading
        the step would make it recompile at every step: log(step=None) labels with the step
        count until the optimizer's hook completes the mark (``mark_forward``)."""
        self._rec._forward_step = None

    def advance(self) -> None:
        """An optimizer step finished (or a GradScaler skipped one): count it, maybe ship data."""
        rec = self._rec
        rec._step += 1                     # counts steps even if the instruments are off
        rec._stepped_unseen = False
        rec._maybe_transfer(time.perf_counter())

    def stage(self, tensor, record, step, wall, arg, wide: bool = False) -> None:
        """Queue a device tensor for the next batched device->host copy; ``record.unpack``
        turns its values into rows on the writer thread."""
        if self.held is not None:
            self.held.append((self.stage, (tensor, record, step, wall, arg, wide)))
            return
        self._rec.staging.add(tensor, record, step, wall, arg, wide)

    def host_value_or_hold(self, step, tag, value, wall) -> None:
        """``host_value``, or held with a capture's records (see ``held``)."""
        if self.held is not None:
            self.held.append((self.host_value, (step, tag, value, wall)))
            return
        self.host_value(step, tag, value, wall)

    def release(self, held) -> None:
        """Queue what a capture held back: each entry is the call it would have made."""
        for queue, args in held:
            queue(*args)
