"""The hooks the recorder puts on the user's model and parameters: safe to copy and to pickle.

timm's ``ModelEma``, torch's ``swa_utils.AveragedModel`` and ``torch.save(model)`` deep-copy or
pickle a model with its hooks. A bound method of the recorder dragged the writer's HDF5 file
along ("h5py objects cannot be pickled") and the user's training died at that line. A copy, or
a model loaded back from a pickle, gets an inert hook: the recorder watches the model it was
given, not copies of it (an EMA copy's forwards are not the training's).
"""
from __future__ import annotations


class RecorderHook:
    """Calls ``fn``; copied or pickled, does nothing (and returns None, which leaves a forward
    and its inputs and outputs as they are)."""

    __slots__ = ("fn",)

    def __init__(self, fn=None):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        fn = self.fn
        return None if fn is None else fn(*args, **kwargs)

    def __deepcopy__(self, memo):
        return RecorderHook()

    def __reduce__(self):
        return (RecorderHook, ())
