"""Activation and input statistics computed on the writer thread from copies
(records/activations.py, records/inputs.py, deferred.Copies) are the ones the hooks computed
themselves, bit for bit."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.deferred import ALIGN, BufferPool, Copies
from trainspect.recorder.records import activations
from trainspect.recorder.records.activations import Activations

INPUT_STATS = (fmt.SYS_INPUT_MEAN, fmt.SYS_INPUT_STD, fmt.SYS_INPUT_MIN, fmt.SYS_INPUT_MAX)
ACT_STATS = ("act_mean", "act_std", "act_absmax", "act_frac_nonpos", "act_dead_frac", "act_frac_saturated")


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, h):
        return self.fn(h)


def _nonfinite(h):
    y = h * 1.0
    y.view(-1)[:3] = torch.tensor([math.nan, math.inf, -math.inf])
    return y


class Probes(torch.nn.Module):
    """Linear -> ReLU(inplace=True), then leaves whose outputs take every branch of the copy:
    odd shapes, views at odd addresses, strided views, 0-d, non-finite, bounded, non-float,
    tuple/dict outputs, a reused output, one large enough for torch to split its sums."""

    def __init__(self, batch):
        super().__init__()
        self.fc = torch.nn.Linear(12, 48)
        self.relu = torch.nn.ReLU(inplace=True)     # rewrites fc's output after its hook
        self.same = torch.nn.Identity()             # returns relu's very output: entry reused
        self.probes = torch.nn.ModuleList([
            torch.nn.Sigmoid(), torch.nn.Tanh(), torch.nn.Hardtanh(-0.5, 0.5),
            Fn(lambda h: (h - 0.3).reshape(batch, 3, 4, 4)),        # (N, C, H, W)
            Fn(lambda h: (h - 0.3).reshape(batch, 6, 8)),           # (N, T, C)
            Fn(lambda h: (h - 0.3).reshape(-1)[3:]),                # a vector at 12 bytes past 64
            Fn(lambda h: (h * 7 - 1).reshape(-1)[1:-2]),
            Fn(lambda h: h[:, ::2] - 0.1),                          # a fresh tensor
            Fn(lambda h: (h - 0.1)[:, ::2]),                        # strided, flattens to a view
            Fn(lambda h: (h - 0.1).t()),                            # strided, flattens to a copy
            Fn(lambda h: (h - 0.2).sum()),                          # 0-d
            Fn(_nonfinite),
            Fn(lambda h: h.argmax(1)),                              # no float output
            Fn(lambda h: (h.argmax(1), h - 1.0)),                   # first tensor not float
            Fn(lambda h: (h * 2.0, h.argmax(1))),
            Fn(lambda h: {"logits": h + 0.5, "aux": h}),
            Fn(lambda h: (h - 0.25).half()),
            Fn(lambda h: (h - 0.4).repeat(1, 1500)),                # ~500 k elements
        ])
        self.head = torch.nn.Linear(48, 1)

    def forward(self, x):
        h = self.same(self.relu(self.fc(x)))
        for p in self.probes:
            p(h)
        return self.head(h)


def record(path, seed, cap, monkeypatch, threads_after=None):
    """acts of a short run (every step recorded) with copies capped at ``cap`` bytes."""
    torch.manual_seed(seed)
    batch = 5 + seed * 2
    model = Probes(batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    try:
        with Recorder(path, stats_every=1, hist_every=0, snapshot_every=0) as rec:
            rec.watch(model, opt)
            pool = rec._instruments.w.pool
            pool.cap_bytes = cap
            for step in range(6):
                if step == 3 and threads_after is not None:
                    rec.flush()              # the writer has summed with the first count
                    torch.set_num_threads(threads_after)
                loss = model(make_input(step, batch)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    with open_run(path) as run:
        acts = {name: run.layer_stat(name).values for name in ACT_STATS}
        acts.update({name: run.scalar(name).values.astype(np.float32) for name in INPUT_STATS})
        return acts, pool


def make_input(step, batch):
    """Inputs at odd addresses, strided, non-finite (the last step), and plain ones."""
    big = torch.randn(batch * 12 * 2 + 7) * 3 + 0.5
    if step == 1:
        return big[3:3 + batch * 12].view(batch, 12)             # 12 bytes past a multiple of 64
    if step == 2:
        return big[:batch * 24].view(24, batch).t()[:, :12]      # strided: computed at once
    if step == 3:
        return big[1:1 + batch * 12].view(batch, 12)
    if step == 5:
        x = big[5:5 + batch * 12].view(batch, 12).clone()
        x[0, 0] = math.nan
        return x
    return torch.randn(batch, 12)


def assert_same(got, expect):
    for name in ACT_STATS + INPUT_STATS:
        assert got[name].shape == expect[name].shape
        np.testing.assert_array_equal(got[name].view(np.uint32), expect[name].view(np.uint32), err_msg=name)


@pytest.fixture
def writer_threads(monkeypatch):
    """Names of the threads that computed deferred rows."""
    seen = []
    rows = Activations.host_rows

    def spy(cap):
        seen.append(threading.current_thread().name)
        return rows(cap)
    monkeypatch.setattr(Activations, "host_rows", staticmethod(spy))
    return seen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_from_copies_equal_the_hooks_rows(tmp_path, seed, monkeypatch, writer_threads):
    expect, _ = record(tmp_path / "hooks.h5", seed, 0, monkeypatch)          # cap 0: computed in the hooks
    assert writer_threads == []
    got, pool = record(tmp_path / "writer.h5", seed, 64 << 20, monkeypatch)
    assert set(writer_threads) == {"trainspect-writer"} and len(writer_threads) == 6
    assert np.isnan(expect["act_mean"]).any() and np.isfinite(expect["act_mean"]).any()
    assert (expect["act_frac_nonpos"][:5, 0] > 0).all()   # fc's negatives, before the ReLU
    assert np.isnan(expect[fmt.SYS_INPUT_MEAN][5]) and np.isfinite(expect[fmt.SYS_INPUT_MEAN][:5]).all()
    assert_same(got, expect)
    assert pool.refused == 0
    assert pool.held == sum(a.nbytes for bufs in pool._free.values() for a in bufs)   # all given back


def test_dropped_batches_give_their_copies_back(tmp_path, monkeypatch, writer_threads):
    from trainspect.recorder.writer_thread import WriterThread
    monkeypatch.setattr(WriterThread, "put_batch", lambda self, item, prompt=False: False)   # queue full
    with pytest.warns(Warning, match="dropped"):
        _, pool = record(tmp_path / "dropped.h5", 0, 64 << 20, monkeypatch)
    assert writer_threads == [] and pool.held > 0
    assert pool.held == sum(a.nbytes for bufs in pool._free.values() for a in bufs)


def test_refused_copies_are_computed_in_the_hooks(tmp_path, monkeypatch, writer_threads):
    expect, _ = record(tmp_path / "hooks.h5", 3, 0, monkeypatch)
    got, pool = record(tmp_path / "capped.h5", 3, 1 << 17, monkeypatch)     # the large output never fits
    assert pool.refused > 0 and writer_threads
    assert_same(got, expect)
    assert pool.held == sum(a.nbytes for bufs in pool._free.values() for a in bufs)


def test_writer_sums_with_the_training_threads_count(tmp_path, monkeypatch):
    more = torch.get_num_threads() + 1     # a count the writer thread did not start with
    expect, _ = record(tmp_path / "hooks.h5", 4, 0, monkeypatch, threads_after=more)
    got, _ = record(tmp_path / "writer.h5", 4, 64 << 20, monkeypatch, threads_after=more)
    assert_same(got, expect)


def test_copies_keep_the_address_modulo_align_and_share_buffers():
    pool = BufferPool()
    copies = Copies(pool, hint=4000)
    src = np.arange(1100, dtype=np.float32)
    outs = []
    for k in range(8):
        a = src[k:k + 100 * (k + 1)].reshape(k + 1, 100)
        align = a.__array_interface__["data"][0] % ALIGN
        out = copies.copy(a, align)
        assert out.flags.c_contiguous and out.__array_interface__["data"][0] % ALIGN == align
        outs.append((a, out))
    for a, out in outs:
        assert np.array_equal(a, out)
    assert len(copies.bufs) == 1            # the hint covered the forward: one take
    assert copies.next_hint() >= copies.used
    copies.release()
    assert copies.bufs == [] and sum(len(v) for v in pool._free.values()) == 1


def test_dropped_copies_go_back_to_the_pool():
    pool = BufferPool()
    copies = Copies(pool)
    copies.copy(np.ones((3, 5), np.float32), 0)
    copies.copy(np.ones(70000, np.float32), 16)
    taken = len(copies.bufs)
    del copies                               # a capture the writer never took (a dropped batch)
    assert taken == 2 and sum(len(v) for v in pool._free.values()) == 2


def test_copies_go_back_when_a_row_fails(monkeypatch):
    pool = BufferPool()
    cap = activations._Capture(2)
    cap.copies = Copies(pool)
    cap.threads = torch.get_num_threads()
    cap[0] = activations._Deferred(cap.copies.copy(np.ones((4, 4), np.float32), 0), None)

    def broken(x, bounds):
        raise MemoryError("no room")
    monkeypatch.setattr(activations, "activation_row", broken)
    with pytest.raises(MemoryError):
        Activations.host_rows(cap)
    assert cap.copies.bufs == [] and sum(len(v) for v in pool._free.values()) == 1
