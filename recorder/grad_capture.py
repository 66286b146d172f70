"""Gradient statistics taken when the backward pass ends, before clipping or unscaling edits them.

nanoGPT, the HF ``Trainer`` and Lightning (``gradient_clip_val``) clip gradients between
``backward()`` and ``optimizer.step()``: norms read in the optimizer's pre-step hook are the
clipped ones (nanoGPT showed 1.0 at every step), so a clipped explosion was invisible.

A post-accumulate-grad hook on a few parameters queues one autograd-engine callback per
backward pass; the callback runs once every gradient of that pass is accumulated and computes
the per-parameter norms there (on the device, no host sync). With gradient accumulation the
last backward before the optimizer step wins: its ``.grad`` holds the whole accumulated sum.
Gradients scaled by a ``GradScaler`` are divided by its scale (``amp.ScalerWatch``).
"""
from __future__ import annotations

import torch

from .hooks import EagerHook, run_outside_dynamo

# Hooks on this many parameters from each end of the model: the first to get its gradient in
# a backward pass queues the callback. A hook on every parameter would cost a Python call per
# parameter per backward (~2 ms for a 2000-tensor model).
HOOKED_PER_END = 4


class BackwardCapture:
    def __init__(self, params, pack, on_error, scale=None, make_hook=EagerHook):
        """``pack()`` returns the packed gradient record of the current ``.grad`` (or None);
        ``scale()`` the loss scale the gradients carry (a 0-d tensor) or None; ``make_hook``:
        wraps the parameter hook (``HookSet.eager``: paused with the rest)."""
        self.pack, self.on_error, self.scale = pack, on_error, scale
        self.pending = None        # record of the latest finished backward, not yet used by a step
        self._queued = False
        self.handles = []
        trainable = [p for p in params if p.requires_grad and hasattr(p, "register_post_accumulate_grad_hook")]
        chosen = trainable if len(trainable) <= 2 * HOOKED_PER_END else (
            trainable[:HOOKED_PER_END] + trainable[-HOOKED_PER_END:])
        for p in chosen:
            self.handles.append(p.register_post_accumulate_grad_hook(make_hook(self._on_accumulated)))

    @property
    def active(self) -> bool:
        return bool(self.handles)

    def _on_accumulated(self, param) -> None:
        if self._queued:
            return
        try:
            torch.autograd.Variable._execution_engine.queue_callback(self._backward_done)
            self._queued = True
        except Exception as exc:  # noqa: BLE001 - never break the user's backward
            self.on_error(exc)

    def _backward_done(self) -> None:
        self._queued = False
        was = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)     # torch.no_grad(), without its ~2.5 us a call
        try:
            packed = self.pack()
            scale = self.scale() if self.scale is not None else None
            if packed is not None and scale is not None:
                packed = unscale(packed, scale, len(packed) // 2)
            self.pending = packed
        except Exception as exc:  # noqa: BLE001 - an exception here would surface in backward()
            self.pending = None
            self.on_error(exc)
        finally:
            torch._C._set_grad_enabled(was)

    def take(self):
        """The record of the last backward since the previous call (None if there was none)."""
        packed, self.pending = self.pending, None
        return packed

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        self.pending = None


run_outside_dynamo(BackwardCapture._backward_done)   # queued by backward(): a frame of its own


def unscale(packed, scale, n_params: int):
    """Divide the norms (not the non-finite counts) of a packed gradient record by ``scale``."""
    inv = 1.0 / scale.to(device=packed.device, dtype=packed.dtype, non_blocking=True).reshape(1)
    P = n_params
    return torch.cat([packed[:P] * inv, packed[P:]])
