"""Scalar rows computed on a device: one value per tag (a logged tensor, the LR, a loss scale)."""
from __future__ import annotations

from .base import Record


class ScalarValues(Record):
    """``arg`` = a tag id (one value) or a tuple of tag ids (one value each, in order)."""

    def unpack(self, values, arg, step, wall, rows):
        if type(arg) is int:
            rows.append((step, arg, values[0], wall))
        else:
            for tag, x in zip(arg, values):
                rows.append((step, tag, x, wall))
        return None


# Stateless: the recorder's log() stages device tensors with this one instance.
SCALAR_VALUES = ScalarValues(None)
