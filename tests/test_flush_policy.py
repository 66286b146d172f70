"""When logged values reach the file: soon after log() without tuning, and no write for nothing."""
from __future__ import annotations

import os
import time

import h5py
import torch

from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt


def _stamp(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _rows(path, dataset: str) -> int:
    """Rows a fresh reader (its own file handle, as another process would) sees."""
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        return f[dataset].shape[0] if dataset in f else 0


def _wait_for_rows(path, n: int, dataset: str = fmt.SCALAR_VALUE, timeout: float = 60.0, poke=None) -> None:
    end = time.monotonic() + timeout
    while _rows(path, dataset) < n:
        assert time.monotonic() < end, f"{_rows(path, dataset)} of {n} rows of {dataset} visible after {timeout} s"
        time.sleep(0.005)
        if poke is not None:
            poke()


def test_values_reach_readers_without_a_flush_call_or_a_heartbeat(tmp_path):
    # The heartbeat interval is an hour: only the writer's own data flushes can show the rows.
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    for k in range(1, 4):
        rec.log({"train/loss": 1.0 / k}, step=k)
        _wait_for_rows(path, k)
        time.sleep(0.03)    # the writer goes idle in between: each value must wake it again
    rec.close()


def test_watched_training_rows_arrive_without_a_flush_call(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec.watch(model, opt)

    def step():
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        rec.log({"train/loss": 1.0})

    for _ in range(20):
        step()
    _wait_for_rows(path, 20)
    # The per-layer gradient records travel too: device statistics are shipped every 50 steps
    # or 50 ms, looked at on each optimizer step.
    _wait_for_rows(path, 20, f"{fmt.GRADS}/step", poke=step)
    rec.close()


def test_a_flush_of_unchanged_data_writes_nothing(tmp_path):
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    for step in range(50):
        rec.log({"a": float(step), "b": 2.0}, step=step)
    assert rec.flush()
    before = _stamp(path)
    time.sleep(0.05)           # a write now would move the modification time
    for _ in range(5):
        assert rec.flush()
    assert _stamp(path) == before
    rec.log({"a": 99.0}, step=99)
    assert rec.flush()
    assert _stamp(path) != before
    rec.close()


def _train(rec, model, opt, steps):
    for _ in range(steps):
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        rec.log({"train/loss": 1.0})


def _held_records_run(path, monkeypatch, record_gap: float):
    """A watched run whose per-layer records, once written, are next due ``record_gap`` s later
    (the metrics keep the short gap), after its first step's records reached the file."""
    from trainspect.recorder import writer_thread

    monkeypatch.setattr(writer_thread, "RECORD_COST_FACTOR", 1e9)
    monkeypatch.setattr(writer_thread, "MAX_FLUSH_GAP", record_gap)
    rec = Recorder(path, flush_every=3600, transfer_every=1, stats_every=1)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec.watch(model, opt)
    _train(rec, model, opt, 1)
    _wait_for_rows(path, 1, f"{fmt.GRADS}/step")    # the first records are written at once
    return rec, lambda steps: _train(rec, model, opt, steps)


def test_layer_records_keep_their_own_slower_clock_and_a_flush_writes_them(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    rec, train = _held_records_run(path, monkeypatch, 3600.0)   # out of reach on a loaded machine
    train(30)
    _wait_for_rows(path, 31)                       # the metrics arrive without a flush call ...
    assert _rows(path, f"{fmt.GRADS}/step") < 31   # ... the records wait for their clock
    assert rec.flush()                             # a flush writes everything held
    assert _rows(path, f"{fmt.GRADS}/step") == 31
    assert _rows(path, f"{fmt.WEIGHTS}/step") == 31
    rec.close()


def test_held_layer_records_are_written_when_due_without_more_logging(tmp_path, monkeypatch):
    # Nothing is logged after the last step: only the writer's own timer can write the records
    # it held back, 2 s after the first ones (the heartbeat is an hour away).
    path = tmp_path / "run.h5"
    rec, train = _held_records_run(path, monkeypatch, 2.0)
    train(39)
    _wait_for_rows(path, 40, f"{fmt.GRADS}/step")
    _wait_for_rows(path, 40, f"{fmt.WEIGHTS}/step")
    rec.close()


def test_values_flowing_faster_than_the_write_gap_do_not_wake_the_writer(tmp_path, monkeypatch):
    """A training loop logs every few milliseconds: the writer writes once a gap and
    then looks again at the gap's end by itself, instead of being woken by the first log()
    after each write (a wake per write, each taking the GIL from the training thread)."""
    from trainspect.recorder import writer_thread as wt
    from trainspect.recorder.h5file import RunFileWriter

    counts = {"notify": 0, "writes": 0}
    notify, append = wt.WriterThread.notify, RunFileWriter.append_scalars

    def counted_notify(self):
        counts["notify"] += 1
        notify(self)

    def counted_append(self, *args):
        counts["writes"] += 1
        append(self, *args)

    # A long gap (0.2 s against a value every ~4 ms): only a loop stalled that long lets the
    # writer find nothing at a gap's end, so a loaded machine does not change the count.
    monkeypatch.setattr(wt, "MIN_FLUSH_GAP", 0.2)
    monkeypatch.setattr(wt.WriterThread, "notify", counted_notify)
    monkeypatch.setattr(RunFileWriter, "append_scalars", counted_append)
    path = tmp_path / "run.h5"
    rec = Recorder(path, flush_every=3600)
    rec.log({"train/loss": 1.0}, step=0)
    rec.flush()          # the file starts (without watch() the writer holds values ~3 s for a layout)
    counts.update(notify=0, writes=0)
    n = 300
    for step in range(1, n):
        rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.004)
    _wait_for_rows(path, n)
    writes, notifies = counts["writes"], counts["notify"]
    rec.close()
    assert writes >= 4, writes
    # Before: one wake per write (the first value after each write woke the writer).
    assert notifies <= max(2, writes // 3), (notifies, writes)
