"""How many device operations the recorder adds to a training step: the figure that sets its
overhead on a launch-bound GPU loop, counted without a GPU.

    python benchmarks/launch_count.py                # default schedules, ~1 min on 2 CPU cores
    python benchmarks/launch_count.py --every-step   # every instrument on every step

On a launch-bound loop (gpu_check's MLP and transformer on an H200 machine: 20-50 us of host
time per kernel launch, results/gpu-2026-12-04) every torch call the recorder makes is paid in
wall time, so the count of its device operations per step is what to bring down. This runs
gpu_check's two models with the same layer structure (so the same number of parameters) but
tiny widths on the CPU, with the recorder forced onto its GPU code path (``_device_path``), at
default schedules in steady state (past ``dense_start``; 200 steps: every default schedule in
its own proportion), and counts what the training thread's recorder frames dispatch:

- aten ops: every op the recorder dispatches (a TorchDispatchMode; views included);
- modelled CUDA launches: views and allocations count 0; ``_foreach_norm`` with an order other
  than 1, 2 or inf counts one launch per tensor (torch's CUDA kernel has no fused path for
  them: ATen/native/cuda/ForeachReduceOp.cu); every other op 1. A model, not a measurement:
  cat, cumsum and the fused foreach kernels can take 2-3 launches each on CUDA.

Also printed: host microseconds per step the recorder adds (recorder step minus bare step,
interleaved, median over repetitions). On the CPU that is the Python and dispatch cost of
the device path (tensors this small cost nearly nothing to compute); it is noisy on a shared
machine and only comparable within one run.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_check  # noqa: E402
from trainspect.recorder.recorder import _inside_recorder  # noqa: E402

FUSED_NORM_ORDERS = (1.0, 2.0, math.inf)
FREE_OPS = {"empty", "empty_strided", "lift_fresh", "detach", "alias"}   # no kernel

# gpu_check's models, narrowed: same depth, so the same parameters per step.
MODELS = [("MLP 8 layers (gpu_check's 8x1024: 18 parameters)", gpu_check.mlp,
           {"depth": 8, "width": 16, "batch": 4}),
          ("Transformer 8 layers (gpu_check's 8x768)", gpu_check.transformer,
           {"layers": 8, "d": 16, "seq": 8, "batch": 2, "vocab": 16})]


def modelled_launches(func, args) -> int:
    name = func.__name__.split(".")[0]
    if func.is_view or name in FREE_OPS:
        return 0
    if name == "_foreach_norm":
        order = float(args[1]) if len(args) > 1 else 2.0
        return 1 if order in FUSED_NORM_ORDERS else len(args[0])
    return 1


class DeviceOpCounter(TorchDispatchMode):
    """Counts the aten ops (and modelled launches) recorder code dispatches on the main thread."""

    def __init__(self):
        super().__init__()
        self.ops = self.launches = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if threading.current_thread() is threading.main_thread() and _inside_recorder(sys._getframe(1)):
            n = modelled_launches(func, args)
            self.ops += 1
            self.launches += n
            key = func.__name__
            self.by_op[key] = self.by_op.get(key, 0) + n
        return func(*args, **(kwargs or {}))


def count(make, sizes, steps, warmup, path, schedule):
    rec, step = gpu_check.training(make, sizes, schedule, path, torch.device("cpu"))
    try:
        for _ in range(warmup):
            step()
        counter = DeviceOpCounter()
        with counter:
            for _ in range(steps):
                step()
    finally:
        rec.close()
    return counter


def host_cost(make, sizes, steps, warmup, reps, path, schedule):
    """Median (recorder - bare) microseconds per step over interleaved repetitions
    (gpu_check's timed loop)."""
    cpu = torch.device("cpu")
    added = []
    for rep in range(reps):
        bare, _ = gpu_check.run(make, sizes, None, steps, warmup, None, cpu)
        recorded, _ = gpu_check.run(make, sizes, schedule, steps, warmup, path.with_name(f"{path.stem}{rep}.h5"), cpu)
        added.append((recorded - bare) * 1e6)
    return statistics.median(added), min(added), max(added)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=gpu_check.DEFAULT_DENSE_START + 10)
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the host-time comparison")
    ap.add_argument("--top", type=int, default=8, help="ops listed per model")
    ap.add_argument("--every-step", action="store_true", help="every instrument on every step")
    args = ap.parse_args()
    schedule = gpu_check.MODES["recorder, all instruments every step" if args.every_step else gpu_check.DEFAULT_MODE]
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}; per training step, "
          f"{'every instrument every step' if args.every_step else 'default schedules'}, steady state "
          f"({args.steps} steps after {args.warmup})\n")
    print("| model | parameters | aten ops | modelled CUDA launches | host us added (CPU): median (min-max) |")
    print("|---|---|---|---|---|")
    details = []
    with tempfile.TemporaryDirectory() as d:
        for name, make, sizes in MODELS:
            counter = count(make, sizes, args.steps, args.warmup, Path(d) / "count.h5", schedule)
            params = len(list(make(torch.device("cpu"), **sizes)[0].parameters()))
            med, lo, hi = host_cost(make, sizes, args.steps, args.warmup, args.reps, Path(d) / "t.h5", schedule)
            print(f"| {name} | {params} | {counter.ops / args.steps:.1f} | "
                  f"{counter.launches / args.steps:.1f} | {med:.0f} ({lo:.0f}-{hi:.0f}) |")
            top = sorted(counter.by_op.items(), key=lambda kv: -kv[1])[:args.top]
            details.append(f"{name}: " + ", ".join(f"{k} {v / args.steps:.2f}" for k, v in top))
    print("\nmodelled launches per step, by op:")
    print("\n".join(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
