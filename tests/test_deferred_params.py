"""Histograms, snapshots and weight norms computed on the writer thread from copies
(records/host_copies.py) are the values the training thread computes (bit for bit), whether
the pool lends every copy, some or none."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter
from trainspect.recorder.host_stats import HOST_CHUNK

PARAM_GROUPS = (fmt.WEIGHTS, fmt.HISTS, fmt.SNAPS)


class OddModel(torch.nn.Module):
    """Odd shapes, a conv kernel, constants (a norm's ones and zeros), a scalar, a matrix
    larger than host_stats.HOST_CHUNK, and a layer that never gets a gradient."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(7, 13)
        self.norm = torch.nn.LayerNorm(13)
        self.conv = torch.nn.Conv2d(1, 5, 3)
        self.big = torch.nn.Parameter(torch.randn(HOST_CHUNK // 997 + 3, 1000) * 0.01)
        self.scale = torch.nn.Parameter(torch.tensor(1.5))
        self.unused = torch.nn.Linear(3, 3)

    def forward(self, x):
        h = self.norm(self.a(x))
        c = self.conv(h[:, None, :12].reshape(-1, 1, 3, 4)).mean()
        return (h.sum(1) + x @ self.big[:7, :7].sum(1) + c) * self.scale


def record_run(path, seed, cap_bytes, monkeypatch, optimizer=True, steps=7):
    """Every record row the writer appends to the parameter groups, before the file rounds them."""
    written = {g: [] for g in PARAM_GROUPS}
    original = RunFileWriter.append_records

    def capture(self, group, step, fields):
        if group in written:
            written[group].append((np.array(step), {k: np.array(v) for k, v in fields.items()}))
        return original(self, group, step, fields)

    monkeypatch.setattr(RunFileWriter, "append_records", capture)
    torch.manual_seed(seed)
    model = OddModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if optimizer else None
    g = torch.Generator().manual_seed(seed + 100)
    threads = torch.get_num_threads()
    with Recorder(path, stats_every=1, hist_every=1, snapshot_every=1, transfer_every=3) as rec:
        rec.watch(model, opt)
        pool = rec._instruments.w.pool
        pool.cap_bytes = cap_bytes
        for step in range(steps):
            torch.set_num_threads(3 if step in (3, 4) else threads)   # the writer keeps its own count
            loss = model(torch.randn(5, 7, generator=g)).square().mean()
            model.zero_grad(set_to_none=step % 3 == 0)
            loss.backward()
            if step == 2:
                model.a.weight.grad[0, 0] = math.nan     # NaN weights from here on
            if step == 3:
                model.conv.bias.grad[1] = math.inf
            if step == 4:
                model.conv.weight.grad = None            # a gradient missing this step
            if opt is not None:
                opt.step()
            else:
                with torch.no_grad():
                    for p in model.parameters():
                        if p.grad is not None:
                            p -= 0.05 * p.grad
                rec.log({"loss": loss.item()})
    torch.set_num_threads(threads)
    monkeypatch.setattr(RunFileWriter, "append_records", original)
    return written, pool


def assert_same_rows(got, want):
    for group in PARAM_GROUPS:
        steps_got = np.concatenate([s for s, _ in got[group]])
        steps_want = np.concatenate([s for s, _ in want[group]])
        assert steps_got.tolist() == steps_want.tolist() and len(steps_got), group
        for name in fmt.RECORD_GROUPS[group]:
            a = np.concatenate([f[name] for _, f in got[group]])
            b = np.concatenate([f[name] for _, f in want[group]])
            assert a.dtype == b.dtype and a.shape == b.shape, (group, name)
            assert a.tobytes() == b.tobytes(), (group, name)   # bit for bit, NaN included


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("optimizer", [True, False])
def test_writer_computed_parameter_records_equal_the_training_thread_ones(tmp_path, monkeypatch, seed, optimizer):
    on_thread, pool = record_run(tmp_path / "thread.h5", seed, 0, monkeypatch, optimizer)
    assert pool.held == 0 and pool.refused > 0            # every copy refused: computed as before
    deferred, pool = record_run(tmp_path / "writer.h5", seed, 1 << 30, monkeypatch, optimizer)
    assert pool.refused == 0 and pool.held > 0
    assert_same_rows(deferred, on_thread)
    # A cap of a few copies: some steps on the writer, some on the training thread, some
    # weight updates from a copy staged before the step and computed after it on the thread.
    mixed, pool = record_run(tmp_path / "mixed.h5", seed, 3 * (HOST_CHUNK * 2) * 4, monkeypatch, optimizer)
    assert pool.refused > 0 and pool.held > 0
    assert_same_rows(mixed, on_thread)
    # The weights went NaN at step 2, the histograms saw it.
    ranges = np.concatenate([f["weight_range"] for _, f in deferred[fmt.HISTS]])
    assert np.isnan(ranges[-1, 0]).all() and not np.isnan(ranges[0]).any()


def test_every_copy_is_given_back_after_close(tmp_path, monkeypatch):
    _, pool = record_run(tmp_path / "r.h5", 0, 1 << 30, monkeypatch)
    free = sum(a.nbytes for arrays in pool._free.values() for a in arrays)
    assert free == pool.held > 0


def test_the_device_path_stages_no_copies(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "d.h5", stats_every=1, hist_every=1, snapshot_every=1, _device_path=True) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            model(torch.randn(2, 4)).sum().backward()
            opt.step()
        assert rec._instruments.w.pool.held == 0


@pytest.mark.parametrize("optimizer", [True, False])
def test_copies_are_shipped_before_transfer_every_once_they_pile_up(tmp_path, monkeypatch, optimizer):
    from trainspect.recorder import instruments

    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if optimizer else None
    with Recorder(tmp_path / "s.h5", stats_every=1, hist_every=1, snapshot_every=1, transfer_every=1000) as rec:
        rec.watch(model, opt)
        rec._transfer_interval = 1e9                 # a slow machine: no transfer by time either
        pool = rec._instruments.w.pool
        per_step = []
        for ship_bytes in (1 << 40, 1):             # never, then at every step
            monkeypatch.setattr(instruments, "SHIP_BYTES", ship_bytes)
            lent = pool.lent
            for _ in range(3):
                model(torch.randn(2, 64)).sum().backward()
                opt.step() if opt is not None else rec.log({"x": 1.0})
            per_step.append((rec.staging.count, pool.lent - lent))
    (kept, lent_kept), (left, lent_shipped) = per_step
    assert kept >= 9 and lent_kept > 0          # 3 steps x (weights, histograms, snapshots) staged
    assert left == 0 and lent_shipped > 0       # shipped at the end of each step


def test_a_prompt_batch_is_decoded_within_the_flush_gap_and_written_by_the_next_flush(tmp_path):
    import threading
    import time

    from trainspect.analysis import open_run

    decoded = threading.Event()

    class Deferred:        # stands for a spec whose unpack computes (and gives copies back)
        group = None

        def unpack(self, values, arg, step, wall, rows):
            rows.append((step, arg, 7.0, wall))
            decoded.set()

    with Recorder(tmp_path / "g.h5", flush_every=120) as rec:
        rec.log({"a": 1.0}, step=0)
        assert rec.flush()
        rec._writer._gap = 120.0                 # the next write waits two minutes...
        rec.log({"a": 2.0}, step=1)              # ...with a row queued: the writer is not idle
        time.sleep(0.1)
        rec.staging.add(torch.empty(0), Deferred(), 5, time.time(), rec._tag("b"))
        rec._transfer(prompt=True)
        assert decoded.wait(30)                  # decoded now, not after the gap
        assert rec.flush(timeout=30)             # a barrier still waits for it to be written
        with open_run(tmp_path / "g.h5") as run:
            assert run.scalar("b").steps.tolist() == [5] and run.scalar("b").values.tolist() == [7.0]
            assert run.scalar("a").steps.tolist() == [0, 1]
