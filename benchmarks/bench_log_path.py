"""The log() path end to end against its floors, in one run (issue 15's "log() path" row).

    python benchmarks/bench_log_path.py [--steps 1000000] [--rounds 3]

Four metrics x ``--steps`` steps, until the data is on disk:

- ``python floor``: the least a per-step logger can do in Python: build the dict of 4 floats
  each step, pass it to a function that keeps it, and turn everything into numpy columns at
  the end (no file).
- ``Recorder.log``: one ``rec.log({...4 floats...}, step=i)`` per step, then ``close()``.
- ``numpy``: the same rows as the run file stores (step, metric id, value, wall time: 28 bytes
  a value) built from the arrays and written with ``np.savez``.
- ``Recorder.log_many``: the four arrays in one call, then ``close()``.

Goals: log <= 2x the Python floor; log_many <= 3x numpy. Each variant runs once per round,
rounds interleaved; the ratio is taken within a round (the machine is shared), reported as
median [min-max]. Wall seconds and process CPU seconds (all threads: the writer's too) are
both shown, since CPU time is what a shared machine's load disturbs least.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainspect.recorder import Recorder  # noqa: E402


def python_floor(n: int, tmp: Path) -> None:
    kept = []

    def log(metrics, step):
        kept.append((step, metrics))

    for i in range(n):
        log({"loss": 0.5 + i, "acc": 0.25, "lr": 1e-3, "gn": 2.0}, i)
    steps = np.fromiter((s for s, _ in kept), np.int64, len(kept))
    cols = {k: np.fromiter((m[k] for _, m in kept), np.float64, len(kept)) for k in kept[0][1]}
    assert len(steps) == n and len(cols) == 4


def recorder_log(n: int, tmp: Path) -> None:
    rec = Recorder(fresh(tmp / "log.h5"))
    for i in range(n):
        rec.log({"loss": 0.5 + i, "acc": 0.25, "lr": 1e-3, "gn": 2.0}, step=i)
    rec.close()


def numpy_savez(n: int, tmp: Path) -> None:
    # The same rows the run file holds (a step, a metric id, a value and a wall time each),
    # so both sides write the same bytes.
    values = _arrays(n)
    k = len(values)
    np.savez(tmp / "cols.npz", step=np.tile(np.arange(n), k), tag=np.repeat(np.arange(k, dtype=np.int32), n),
             value=np.concatenate(list(values.values())), wall=np.full(n * k, time.time()))


def recorder_log_many(n: int, tmp: Path) -> None:
    values = _arrays(n)
    rec = Recorder(fresh(tmp / "many.h5"))
    rec.log_many(values, steps=np.arange(n))
    rec.close()


def _arrays(n: int) -> dict:
    base = np.arange(n, dtype=np.float64)
    return {"loss": base + 0.5, "acc": np.full(n, 0.25), "lr": np.full(n, 1e-3), "gn": np.full(n, 2.0)}


def fresh(path: Path) -> Path:
    """The previous round's file is removed, so each round writes a new run."""
    path.unlink(missing_ok=True)
    return path


VARIANTS = {"python floor": python_floor, "Recorder.log": recorder_log,
            "numpy savez": numpy_savez, "Recorder.log_many": recorder_log_many}
RATIOS = [("Recorder.log", "python floor", 2.0), ("Recorder.log_many", "numpy savez", 3.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    wall: dict = {k: [] for k in VARIANTS}
    cpu: dict = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        names = list(VARIANTS)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:   # rotate the order
                w0, c0 = time.perf_counter(), time.process_time()
                VARIANTS[name](args.steps, tmp)
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    print(f"4 metrics x {args.steps:,} steps, {args.rounds} interleaved rounds: median [min-max]\n")
    print("| variant | wall s | CPU s |\n|---|---|---|")
    for name in VARIANTS:
        print(f"| {name} | {_spread(wall[name])} | {_spread(cpu[name])} |")
    print("\n| ratio | wall | CPU | goal |\n|---|---|---|---|")
    for a, b, goal in RATIOS:
        rw = [x / y for x, y in zip(wall[a], wall[b])]
        rc = [x / y for x, y in zip(cpu[a], cpu[b])]
        print(f"| {a} / {b} | {_spread(rw)} | {_spread(rc)} | <= {goal:g} |")


def _spread(xs: list) -> str:
    return f"{statistics.median(xs):.3g} [{min(xs):.3g}-{max(xs):.3g}]"


if __name__ == "__main__":
    main()
