"""``torch.amp.GradScaler``: skipped steps, the loss scale, and scaled gradients.

A scaler skips ``optimizer.step()`` when a gradient overflowed; the optimizer's hooks then never
run, so the recorder's step count fell behind the user's (25 skipped steps of 30 put the
gradient records at steps 0..4 while the losses ran 0..29). ``GradScaler.step`` reads the
overflow flag on the host itself, so knowing whether the optimizer ran costs no extra
synchronisation: a call that did not reach the optimizer is a skipped step, counted and
recorded as ``sys/amp_skipped_step``.

Most scripts never pass their scaler to ``watch()`` (nanoGPT, the HF Trainer and Lightning's
``16-mixed`` keep it out of sight): then every skipped step put the step count one behind the
user's, and the gradient norms carried the loss scale (65536x; inf once their squares overflow
float32, which the advisor read as non-finite gradients). So ``torch.amp.GradScaler.step`` is
routed once per process (``route_scaler_steps``): a call for a watched optimizer goes through
that optimizer's instruments, which count the steps it skips and, for a scaler ``watch()`` was
not given, adopt it at that first step, before the optimizer runs. Calls for other optimizers
cost one dictionary lookup more.
"""
from __future__ import annotations

import functools

from .optimizer_wrappers import unwrap

_routes: dict = {}     # id(torch optimizer) -> handler(scaler, call) of the instruments watching it
_routed = False        # GradScaler.step wrapped (once per process)


def scaler_enabled(scaler) -> bool:
    try:
        return bool(scaler.is_enabled())
    except Exception:  # noqa: BLE001 - not a GradScaler-like object
        return False


def route_scaler_steps(optimizer, handler) -> None:
    """From now on ``GradScaler.step(optimizer)`` of any enabled scaler calls
    ``handler(scaler, call)``, which must run ``call()`` (the real step) once and return its result."""
    global _routed
    if not _routed:
        try:
            from torch.amp import GradScaler
        except ImportError:   # torch without torch.amp: scalers are only seen when given
            return
        GradScaler.step = _routed_step(GradScaler.step)
        _routed = True
    _routes[id(optimizer)] = handler


def unroute_scaler_steps(optimizer, handler) -> None:
    if _routes.get(id(optimizer)) == handler:    # a bound method is made anew at each access: not `is`
        del _routes[id(optimizer)]


def _routed_step(original):
    @functools.wraps(original)
    def step(self, optimizer, *args, **kwargs):
        handler = _routes.get(id(unwrap(optimizer))) if _routes else None
        if handler is None or not scaler_enabled(self):
            return original(self, optimizer, *args, **kwargs)
        return handler(self, lambda: original(self, optimizer, *args, **kwargs))
    return step


class ScalerWatch:
    """The loss scale of the GradScaler a watch() uses (given, or found by ``route_scaler_steps``)."""

    def __init__(self, scaler):
        self.scaler = scaler

    def scale(self):
        """The current loss scale as a 0-d tensor on its device (no host read), or None."""
        s = getattr(self.scaler, "_scale", None)
        return s if s is not None and scaler_enabled(self.scaler) else None
