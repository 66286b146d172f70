"""Memory of a training process that records a long run: does it grow with the run's length?

    python benchmarks/bench_writer_memory.py [--steps 200000] [--every 25000]

A small MLP (8-16-2, SGD) trains on one fixed batch under ``watch()`` at default schedules,
logging its loss and LR every step; the resident set size (after ``gc.collect()`` and glibc's
``malloc_trim``, so freed memory is not counted) is printed every ``--every`` steps, beside
the same loop without a recorder. What a recorder may hold is bounded (its queues, HDF5's
caches): the growth should level off, not follow the step count.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:   # not glibc
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def child(steps: int, every: int, recorded: bool, path: str) -> None:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, 8), torch.randint(0, 2, (4,))
    rec = None
    if recorded:
        from trainspect.recorder import Recorder

        rec = Recorder(path, overwrite=True)
        rec.watch(model, opt)
    started = time.perf_counter()
    for i in range(steps + 1):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log({"train/loss": loss, "lr": 0.01})
        if i % every == 0:
            print(f"{i} {rss_mb():.1f} {time.perf_counter() - started:.0f}", flush=True)
    if rec is not None:
        rec.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--every", type=int, default=25_000)
    ap.add_argument("--child", choices=["bare", "recorded"])
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        child(args.steps, args.every, args.child == "recorded", args.path)
        return 0
    columns = {}
    with tempfile.TemporaryDirectory() as d:
        for kind in ("bare", "recorded"):
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(args.steps),
                                  "--every", str(args.every), "--path", str(Path(d) / "run.h5")],
                                 check=True, capture_output=True, text=True).stdout
            columns[kind] = [line.split() for line in out.splitlines()]
    print("| step | bare RSS (MB) | recorded RSS (MB) | recorded growth since step 0 (MB) |")
    print("|---|---|---|---|")
    first = float(columns["recorded"][0][1])
    for (step, bare, _), (_, rec, _) in zip(columns["bare"], columns["recorded"]):
        print(f"| {int(step):,} | {float(bare):.1f} | {float(rec):.1f} | {float(rec) - first:+.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
