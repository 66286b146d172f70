"""Host buffers for statistics computed on the writer thread instead of the training thread.

On the CPU the training thread only copies the tensors a statistic needs (a memcpy: ~0.1 ms a
megabyte) into a buffer taken from a ``BufferPool``; the record spec stages the buffer in its
``arg`` (``link.stage`` with an empty tensor) and its ``unpack`` computes the statistic on the
writer thread and gives the buffer back. The pool caps the bytes held between the copy and
the writer: when the writer falls behind and the cap is reached, ``take`` returns None and
the spec computes on the training thread as before, so memory stays bounded and nothing is
lost. No torch import: the writer side only needs numpy.
"""
from __future__ import annotations

import threading

import numpy as np

DEFAULT_CAP_BYTES = 256 << 20    # bytes held in copies not yet processed by the writer, per pool


class BufferPool:
    """Reusable 1-D numpy buffers, taken on the training thread and given back on the writer
    thread. Buffers of one size class (the next power of two of the request, at least 64 kB)
    are reused; the total of taken and kept buffers stays under ``cap_bytes``."""

    def __init__(self, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.Lock()
        self._free: dict = {}        # (dtype, capacity) -> [arrays]
        self.held = 0                # bytes of every buffer this pool made (taken or free)
        self.refused = 0             # take() calls answered None (the cap was reached)
        self.lent = 0                # bytes handed out by take() so far (callers diff it)

    def take(self, n: int, dtype=np.float32):
        """A buffer of ``n`` elements (a view of a pooled array), or None over the cap."""
        dtype = np.dtype(dtype)
        capacity = max(1 << 14, 1 << max(0, int(n) - 1).bit_length())
        key = (dtype.str, capacity)
        with self._lock:
            size = capacity * dtype.itemsize
            free = self._free.get(key)
            if free:
                self.lent += size
                return free.pop()[:n]
            if self.held + size > self.cap_bytes:
                # Free buffers of other sizes (the model's gradients changed) make room first.
                self._drop_free_locked(size)
                if self.held + size > self.cap_bytes:
                    self.refused += 1
                    return None
            self.held += size
            self.lent += size
        return np.empty(capacity, dtype)[:n]

    def give(self, buf) -> None:
        """Return a buffer from ``take`` (any view of it) for reuse."""
        base = buf.base if buf.base is not None else buf
        with self._lock:
            self._free.setdefault((base.dtype.str, base.size), []).append(base)

    def _drop_free_locked(self, need: int) -> None:
        for key in list(self._free):
            arrays = self._free[key]
            while arrays and self.held + need > self.cap_bytes:
                a = arrays.pop()
                self.held -= a.nbytes
            if not arrays:
                del self._free[key]
