"""Copies of the weights and gradients for parameter statistics computed on the writer thread.

On the CPU fast path the histograms, snapshots and weight norms of a step are computed by the
writer thread (issue 15): the training thread only copies the tensors, as float32, into a
buffer of the watch's ``deferred.BufferPool`` (one ``torch.cat``, a memcpy), and the specs
stage the copy in their ``arg``. One copy of the weights (and one of the gradients) serves
every spec due at the step; the last spec to read it on the writer gives the buffer back.
The writer runs the very computation the training thread would (same functions, float32
values in the same order and shapes), so the values written are the same.

A copy is only made for tensors whose statistics do not depend on how they are stored:
plain (not sharded, not sparse) CPU tensors, float32 contiguous weights (the norms and
snapshots read them as they are). Otherwise, or when the pool refuses (the writer is behind),
the specs compute on the training thread as before.
"""
from __future__ import annotations

import threading

import torch

EMPTY = torch.empty(0)   # what a deferred spec stages: its values travel in its arg


class HostCopy:
    """Float32 copies of some tensors (None stays None) in one pooled buffer, shared by the
    specs that stage it; each holder releases it once, the last gives the buffer back."""

    __slots__ = ("pool", "buf", "shapes", "threads", "_users", "_lock", "_views")

    def __init__(self, pool, buf, shapes):
        self.pool, self.buf, self.shapes = pool, buf, shapes
        self.threads = torch.get_num_threads()   # the copying (training) thread's torch thread count
        self._users = 1       # the maker's reference
        self._lock = threading.Lock()
        self._views = None    # tensors(), made once for the specs that read this copy

    def hold(self) -> HostCopy:
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self._views = None
            self.pool.give(self.buf)

    def tensors(self) -> list:
        """The copies as tensors shaped like the originals (views of the buffer), None where
        there was no tensor. Only between hold() and release(); one thread at a time (the
        writer, or the training thread for a copy it alone holds)."""
        if self._views is None:
            shapes = [s for s in self.shapes if s is not None]
            parts = iter(torch.from_numpy(self.buf).split_with_sizes([s.numel() for s in shapes]))
            self._views = [None if s is None else next(parts).view(s) for s in self.shapes]
        return list(self._views)


def same_threads(copy: HostCopy) -> None:
    """Compute on this thread (the writer) with the thread count the training thread had:
    torch splits a reduction's data by thread (its full sums differ in the last bits), and
    each thread keeps its own count (torch.set_num_threads after the writer started)."""
    if torch.get_num_threads() != copy.threads:
        torch.set_num_threads(copy.threads)


def copy_tensors(pool, tensors) -> HostCopy | None:
    """Copy CPU ``tensors`` (None allowed) as float32 into one buffer of ``pool``; None if the
    pool refuses (its cap is reached)."""
    flats = [t.detach().reshape(-1) for t in tensors if t is not None]
    flats = [f if f.dtype == torch.float32 else f.float() for f in flats]
    buf = pool.take(sum(f.numel() for f in flats))
    if buf is None:
        return None
    if flats:
        torch.cat(flats, out=torch.from_numpy(buf))
    return HostCopy(pool, buf, [None if t is None else t.shape for t in tensors])


def release_all(*copies) -> None:
    """Release every HostCopy given (None skipped), even if one release fails."""
    error = None
    for c in copies:
        if c is not None:
            try:
                c.release()
            except Exception as exc:  # noqa: BLE001 - release the others first
                error = exc
    if error is not None:
        raise error


_PLAIN = (torch.Tensor, torch.nn.Parameter)    # not a subclass (DTensor, a sharded parameter)


def _plain_cpu(t) -> bool:
    return type(t) in _PLAIN and t.is_cpu and t.layout == torch.strided


class StepCopies:
    """The copies of one optimizer step (or log() call), made on first request: ``weights()``
    and ``grads()`` return a HostCopy to ``hold()`` for a staged arg, or None (compute on the
    training thread). ``end_step()`` drops the step's own references (Instruments calls it)."""

    def __init__(self, watched):
        self.w = watched
        self._weights = self._grads = None
        self._ok = None              # this step: may the weights (and gradients) be copied?

    def weights(self) -> HostCopy | None:
        if self._weights is None and self.weights_ok():
            self._weights = copy_tensors(self.w.pool, self.w.params)
        return self._weights

    def grads(self) -> HostCopy | None:
        if self._grads is None and self.weights_ok() and self._grads_ok():
            self._grads = copy_tensors(self.w.pool, [p.grad for p in self.w.params])
        return self._grads

    def end_step(self) -> None:
        weights, grads = self._weights, self._grads
        self._weights = self._grads = self._ok = None
        release_all(weights, grads)

    def weights_ok(self) -> bool:
        """May the weights be copied (checked once per step)?"""
        if self._ok is None:
            self._ok = self.w.cpu_fast_path and weights_copyable(self.w.params)
        return self._ok

    def _grads_ok(self) -> bool:
        return all(p.grad is None or _plain_cpu(p.grad) for p in self.w.params)


def weights_copyable(params) -> bool:
    """Plain contiguous float32 CPU tensors: their statistics read from a copy are the same."""
    f32 = torch.float32
    return all(_plain_cpu(p) and p.dtype == f32 and p.is_contiguous() for p in params)
