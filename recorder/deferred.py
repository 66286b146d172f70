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


ALIGN = 64    # bytes: torch's CPU tensors start on a multiple of this


class Copies:
    """Arrays of one moment (the leaf outputs of one forward) copied one after another into
    buffers from a ``BufferPool``: one ``take`` for a forward when ``hint`` (elements, the
    previous forward's total) is right, and no 64 kB buffer per tiny output.

    Each copy starts at the address of the array it copies modulo ``ALIGN`` bytes: MKL's dot
    product sums in an order that depends on the address modulo 16 bytes (measured with
    torch.dot on float32: other sums for 1 of 4 offsets), so statistics of the copy equal
    those of the original bit for bit. The buffers go back to the pool with ``release()``,
    or when this object is dropped unreleased (a batch the writer never took)."""

    __slots__ = ("pool", "hint", "bufs", "used", "count", "_tail")

    def __init__(self, pool: BufferPool, hint: int = 0):
        self.pool = pool
        self.hint = int(hint)
        self.bufs = []          # taken from the pool
        self.used = 0           # elements used in them, padding included
        self.count = 0          # arrays copied
        self._tail = None       # the unused end of the last buffer

    def copy(self, a, align: int):
        """A C-contiguous copy of the numpy array ``a`` whose address is ``align`` modulo
        ``ALIGN`` bytes, or None when the pool refuses (the writer is behind)."""
        size = max(1, a.size)
        slack = ALIGN // a.itemsize
        tail = self._tail
        if tail is None or tail.dtype != a.dtype or tail.size < size + slack:
            tail = None
            if self.hint > self.used + size + slack:     # the rest of the forward at once
                tail = self.pool.take(self.hint - self.used, a.dtype)
            if tail is None:
                tail = self.pool.take(size + slack, a.dtype)
            if tail is None:
                return None
            self.bufs.append(tail)
        pad = (align - tail.__array_interface__["data"][0]) % ALIGN // a.itemsize
        out = tail[pad:pad + size].reshape(a.shape)
        self._tail = tail[pad + size:]
        self.used += pad + size
        self.count += 1
        np.copyto(out, a)
        return out

    def next_hint(self) -> int:
        """Elements that hold these copies whatever their padding: the next forward's hint."""
        return self.used + self.count * (ALIGN // 4)

    def release(self) -> None:
        """Give every buffer back to the pool (once; the copies must not be used after)."""
        bufs, self.bufs, self._tail = self.bufs, [], None
        for b in bufs:
            self.pool.give(b)

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
