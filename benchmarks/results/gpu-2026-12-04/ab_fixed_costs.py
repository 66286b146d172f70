"""What the recorder's fixed per-step cost is made of on a launch-bound GPU loop (gpu_check's
MLP and transformer, default schedules, steady state), by switching one part off or back at a time:

    python benchmarks/results/gpu-2026-12-04/ab_fixed_costs.py [--reps 6]     # CUDA machine
    python benchmarks/results/gpu-2026-12-04/ab_fixed_costs.py --device cpu --reps 1 --steps 5

Variants (interleaved within each repetition; ratio = variant / bare of the same repetition):
- the CUDA memory record read as before (two flattenings of the allocator's statistics) and
  switched off, to price it;
- the writer thread flushing at most once a second instead of every 20 ms+ (its GIL share),
  and with a write-cost factor of 40 instead of 10 between flushes;
- the gradient record's non-finite counts off.
Also printed: the writer thread's CPU time per training step (psutil), a bound on the GIL time
it can take from the training thread. Timed loops run under set_sync_debug_mode("error").
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # benchmarks/: gpu_check
import gpu_check  # noqa: E402
from trainspect.recorder import writer_thread  # noqa: E402
from trainspect.recorder.records import cuda_memory  # noqa: E402


def old_memory_read(device):
    return float(torch.cuda.memory_allocated(device)), float(torch.cuda.max_memory_allocated(device))


VARIANTS = {
    "bare": (None, contextlib.nullcontext),
    "default": ({}, contextlib.nullcontext),
    "default, CUDA memory read as before": ({}, lambda: patch.object(cuda_memory, "allocated_bytes", old_memory_read)),
    "default, no CUDA memory record": ({}, lambda: patch.object(cuda_memory.CudaMemory, "wanted",
                                                           classmethod(lambda cls, w: False))),
    "default, writer flushes once a second": ({}, lambda: patch.multiple(writer_thread, MIN_FLUSH_GAP=1.0,
                                                                           MAX_FLUSH_GAP=1.0)),
    "default, writer cost factor 40 (not 10)": ({}, lambda: patch.object(writer_thread, "FLUSH_COST_FACTOR", 40.0)),
    "default, non-finite counts off": ({}, gpu_check._no_nonfinite_counts),
}


def thread_cpu(native_id):
    """CPU seconds of one thread of this process: schedstat's nanoseconds where the kernel
    has them, else psutil's clock ticks (10 ms: coarse for a few hundred steps)."""
    try:
        return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return float("nan")
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return float("nan")


def run(make, sizes, device, kw, steps, warmup, path):
    rec, step = gpu_check.training(make, sizes, kw, path, device)
    for _ in range(warmup):
        step()
    gpu_check.synchronize(device)
    writer = rec._writer.thread.native_id if rec is not None else None
    cpu0 = thread_cpu(writer) if writer else 0.0
    with gpu_check.sync_debug(device):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        gpu_check.synchronize(device)
        dt = (time.perf_counter() - t0) / steps
    cpu = (thread_cpu(writer) - cpu0) / steps if writer else 0.0
    if rec is not None:
        rec.close()
    return dt, cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--budget", type=float, default=110.0,
                    help="seconds per model: no repetition is started after this")
    args = ap.parse_args()
    device = torch.device(args.device)
    warmup = gpu_check.DEFAULT_DENSE_START + 10
    # The transformer (~15 s a run on the H200 machine) gets the variants that matter most.
    plans = [(gpu_check.MODELS[device.type][0], list(VARIANTS)),
             (gpu_check.MODELS[device.type][1], ["bare", "default", "default, CUDA memory read as before"])]
    for (label, make, sizes), names in plans:
        times = {v: [] for v in names}
        writer_cpu = {v: [] for v in names}
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            for r in range(args.reps):
                if r and time.perf_counter() - started > args.budget:
                    print(f"{label}: {r} repetitions (budget)")
                    break
                for i, name in enumerate(names):
                    kw, switch = VARIANTS[name]
                    with switch():
                        dt, cpu = run(make, sizes, device, kw, args.steps, warmup, Path(d) / f"{r}-{i}.h5")
                    times[name].append(dt)
                    writer_cpu[name].append(cpu)
                print(f"[{time.perf_counter() - started:.0f} s] {label}: repetition {r} done", flush=True)
        print(f"\n| {label}: variant | ms/step (median) | ratio to bare: median (min-max) | writer thread CPU ms/step |")
        print("|---|---|---|---|")
        for name in names:
            ratios = [t / b for t, b in zip(times[name], times["bare"])]
            print(f"| {name} | {1e3 * statistics.median(times[name]):.3f} | {statistics.median(ratios):.3f} "
                  f"({min(ratios):.3f}-{max(ratios):.3f}) | {1e3 * statistics.median(writer_cpu[name]):.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
