"""recorder/deferred.BufferPool: buffers reused across threads, bytes held capped."""
import queue
import threading

import numpy as np

from trainspect.recorder.deferred import BufferPool


def test_given_back_buffer_is_reused():
    pool = BufferPool(cap_bytes=1 << 20)
    a = pool.take(1000)
    assert a.shape == (1000,) and a.dtype == np.float32
    a[:] = 1.0
    pool.give(a)
    b = pool.take(900)             # same size class: the same memory
    assert np.shares_memory(a, b)
    assert pool.held == (1 << 14) * 4


def test_cap_refuses_then_frees_other_sizes():
    pool = BufferPool(cap_bytes=4 * (1 << 16))
    big = pool.take(1 << 16)       # the whole cap
    assert big is not None and pool.take(10) is None and pool.refused == 1
    pool.give(big)
    small = pool.take(10)          # the free big buffer is dropped to make room
    assert small is not None and pool.held == 4 * (1 << 14)


def test_take_and_give_from_two_threads_keep_the_count():
    pool = BufferPool(cap_bytes=64 << 20)
    handed = queue.Queue(maxsize=256)   # bounded: a writer without the GIL for 2000 takes would not give back

    def writer():
        while (buf := handed.get()) is not None:
            pool.give(buf)
    t = threading.Thread(target=writer)
    t.start()
    for i in range(2000):
        buf = pool.take(1000 + i % 7)
        assert buf is not None
        handed.put(buf)
    handed.put(None)
    t.join()
    free = sum(len(v) for v in pool._free.values())
    assert pool.held == free * (1 << 14) * 4 and pool.held <= 64 << 20


class _Holder:
    """A record spec stand-in whose staged arg holds a pooled buffer."""
    group = None

    def __init__(self, pool):
        self.pool = pool

    def discard(self, arg):
        self.pool.give(arg)


def test_dropped_staging_and_batches_give_their_buffers_back():
    import torch

    from trainspect.recorder.writer_thread import DeviceStaging

    pool = BufferPool(cap_bytes=1 << 20)
    spec = _Holder(pool)
    staging = DeviceStaging()
    for _ in range(3):
        staging.add(torch.empty(0), spec, 0, 0.0, pool.take(100))
    staging.add(torch.ones(2), object(), 0, 0.0, None)    # a spec without discard(): skipped
    staging.discard()
    assert staging.count == 0 and sum(len(v) for v in pool._free.values()) == 3
    for _ in range(2):
        staging.add(torch.empty(0), spec, 0, 0.0, pool.take(100))
    staging.take().discard()                                 # a batch the full queue refused
    assert sum(len(v) for v in pool._free.values()) == 3     # the same three arrays, reused


def test_recorder_gives_back_the_buffers_of_a_refused_batch(tmp_path, monkeypatch):
    import torch

    from trainspect.recorder import Recorder

    pool = BufferPool(cap_bytes=1 << 20)
    spec = _Holder(pool)
    with Recorder(tmp_path / "r.h5") as rec:
        monkeypatch.setattr(rec._writer, "put_batch", lambda batch, prompt=False: False)
        rec.staging.add(torch.empty(0), spec, 0, 0.0, pool.take(100))
        rec._transfer()
        assert sum(len(v) for v in pool._free.values()) == 1 and rec._writer.dropped == 1
