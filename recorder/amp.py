"""``torch.amp.GradScaler``: skipped steps, the loss scale, and scaled gradients.

A scaler skips ``optimizer.step()`` when a gradient overflowed; the optimizer's hooks then never
run, so the recorder's step count fell behind the user's (25 skipped steps of 30 put the
gradient records at steps 0..4 while the losses ran 0..29). The scaler's ``step`` is wrapped on
this one instance: a call that did not reach the optimizer is a skipped step, counted and
recorded as ``sys/amp_skipped_step``. ``GradScaler.step`` reads the overflow flag on the host
itself, so knowing whether the optimizer ran costs no extra synchronisation.
"""
from __future__ import annotations

from .optimizer_wrappers import unwrap


def scaler_enabled(scaler) -> bool:
    try:
        return bool(scaler.is_enabled())
    except Exception:  # noqa: BLE001 - not a GradScaler-like object
        return False


class ScalerWatch:
    def __init__(self, scaler, optimizer, steps_done, on_skipped):
        """``steps_done()`` counts optimizer steps the hooks saw; ``on_skipped()`` handles one skip."""
        self.scaler = scaler
        original = scaler.step

        def step(opt, *args, **kwargs):
            before = steps_done()
            out = original(opt, *args, **kwargs)
            if steps_done() == before and unwrap(opt) is optimizer:
                on_skipped()
            return out

        self._wrapper = step
        scaler.step = step

    def scale(self):
        """The current loss scale as a 0-d tensor on its device (no host read), or None."""
        s = getattr(self.scaler, "_scale", None)
        return s if s is not None and scaler_enabled(self.scaler) else None

    def remove(self) -> None:
        if self.scaler.__dict__.get("step") is self._wrapper:
            del self.scaler.step
