"""Import of a TensorBoard event file with 4 tags x N scalars (default N = 1M): trainspect's own
reader (read_event_file), the whole `import` to a run file, and tensorboard's EventAccumulator
(when the tensorboard package is installed; --no-tb skips it), all on the same file in one run.

    PYTHONPATH=... python benchmarks/bench_tb_import.py [--n 1000000] [--no-tb]

Wall and CPU time are both printed: on a shared machine the CPU time (process_time: every
thread of this process) is the fair figure; on an idle one they agree.

The event file is generated here with numpy (the same bytes SummaryWriter writes for
add_scalar: Event{wall_time, step, Summary{Value{tag, simple_value}}}, CRC-32C framed), since
writing 4M events through SummaryWriter takes minutes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from trainspect.recorder.importers.tfevents import _masked_crc_rows, read_event_file

TAGS = ("train/loss", "val_loss", "lr-Adam", "grad_norm")


def _varint_bytes(steps: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(steps), k), np.uint8)
    for i in range(k):
        out[:, i] = ((steps >> (7 * i)) & 0x7F) | (0x80 if i < k - 1 else 0)
    return out


def _records(tag: bytes, steps, values, walls, k) -> np.ndarray:
    """Framed records (rows) of scalar events whose steps all take k varint bytes."""
    value = bytes([0x0A, len(tag)]) + tag + b"\x15"
    summary_len = 2 + len(value) + 4
    n = len(steps)
    head = np.frombuffer(b"\x09", np.uint8)
    data = np.concatenate([
        np.broadcast_to(head, (n, 1)), walls.astype("<f8").view(np.uint8).reshape(n, 8),
        np.broadcast_to(np.uint8(0x10), (n, 1)), _varint_bytes(steps, k),
        np.broadcast_to(np.frombuffer(bytes([0x2A, summary_len, 0x0A, len(value) + 4]) + value, np.uint8),
                        (n, 4 + len(value))),
        values.astype("<f4").view(np.uint8).reshape(n, 4)], axis=1)
    length = np.full(n, data.shape[1], "<u8").view(np.uint8).reshape(n, 8)
    return np.concatenate([length, _masked_crc_rows(length).astype("<u4").view(np.uint8).reshape(n, 4), data,
                           _masked_crc_rows(data).astype("<u4").view(np.uint8).reshape(n, 4)], axis=1)


def write_event_file(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    header_data = np.frombuffer(b"\x09" + np.float64(time.time()).tobytes() + b"\x1a\x0dbrain.Event:2", np.uint8)[None]
    ln = np.full(1, header_data.shape[1], "<u8").view(np.uint8)[None]
    blocks = [np.concatenate([ln, _masked_crc_rows(ln).astype("<u4").view(np.uint8)[None], header_data,
                              _masked_crc_rows(header_data).astype("<u4").view(np.uint8)[None]], axis=1).ravel()]
    steps = np.arange(n, dtype=np.int64)
    k_of = np.maximum(1, (np.floor(np.log2(np.maximum(steps, 1))).astype(int) // 7) + 1)
    walls = 1.7e9 + steps * 0.01
    for k in np.unique(k_of):
        sel = steps[k_of == k]
        rows = [_records(t.encode(), sel, rng.standard_normal(len(sel)), walls[sel], int(k)) for t in TAGS]
        blocks.append(np.concatenate(rows, axis=1).ravel())   # step-major: the 4 tags of a step in a row
    path.write_bytes(np.concatenate(blocks).tobytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="scalars per tag")
    ap.add_argument("--no-tb", action="store_true", help="skip tensorboard's EventAccumulator")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp) / "tb"
        logdir.mkdir()
        f = logdir / "events.out.tfevents.0.bench"
        t = time.perf_counter()
        write_event_file(f, args.n)
        print(f"generated {f.stat().st_size / 1e6:.0f} MB, {len(TAGS)} x {args.n:,} scalars in {time.perf_counter() - t:.1f} s")

        t, c = time.perf_counter(), time.process_time()
        data = read_event_file(f)
        own, own_cpu = time.perf_counter() - t, time.process_time() - c
        assert all(len(data.scalars[tag][0]) == args.n for tag in TAGS)
        print(f"trainspect read_event_file (CRC-checked): {own:.2f} s wall, {own_cpu:.2f} s CPU")

        from trainspect.recorder.importers import convert
        t, c = time.perf_counter(), time.process_time()
        convert(logdir, Path(tmp) / "run.h5")
        full, full_cpu = time.perf_counter() - t, time.process_time() - c
        print(f"trainspect import to run.h5 (read + write): {full:.2f} s wall, {full_cpu:.2f} s CPU "
              "(the writer thread's time included)")

        if not args.no_tb:
            try:
                from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            except ImportError:
                print("tensorboard not installed: EventAccumulator not measured")
                return
            t, c = time.perf_counter(), time.process_time()
            acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
            acc.Reload()
            got = {tag: len(acc.Scalars(tag)) for tag in TAGS}
            tb, tb_cpu = time.perf_counter() - t, time.process_time() - c
            assert all(v == args.n for v in got.values()), got
            print(f"tensorboard EventAccumulator: {tb:.2f} s wall, {tb_cpu:.2f} s CPU "
                  f"({tb_cpu / full_cpu:.0f}x trainspect's whole import in CPU time)")


if __name__ == "__main__":
    main()
