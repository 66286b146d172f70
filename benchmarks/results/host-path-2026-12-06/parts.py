"""Where the device path's host time goes at default schedules, priced part by part on the CPU.

    python benchmarks/results/host-path-2026-12-06/parts.py [--steps 1000] [--reps 5]

On a launch-bound GPU loop every microsecond the recorder spends on the training thread is wall
time (results/gpu-2026-12-04: the H200 host paid ~50 us a kernel launch). This runs
launch_count's narrowed MLP (gpu_check's 8 layers, width 16) on the CPU with the recorder forced
onto its GPU code path, and times a step with parts of the recorder switched off (interleaved,
median over ``--reps``): what each part adds is the difference to the variant above it.

- bare: no recorder;
- default: default schedules;
- no non-finite counts: the gradient record without its counts (gpu_check's patch);
- fixed: every hook in place, the gradient record computes nothing (gpu_check's patch);
- fixed, then each of: the backward-end capture's callback, log(), the global optimizer hooks,
  the watched optimizer's hooks, the root module's forward hooks switched off (their functions
  made no-ops; torch still calls the hooks).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gpu_check  # noqa: E402
import launch_count  # noqa: E402
from trainspect.recorder import grad_capture, instruments, recorder  # noqa: E402


def _both(*patches):
    @contextlib.contextmanager
    def cm():
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p())
            yield
    return cm


def variants():
    default = gpu_check.MODES[gpu_check.DEFAULT_MODE]
    fixed = gpu_check.PATCHES["per-step, no gradient record (hooks, LR, loss)"]
    off = lambda cls, *names: [lambda n=n: mock.patch.object(cls, n, lambda *a, **k: None) for n in names]  # noqa: E731
    return {
        "bare": (None, None),
        "default": (default, None),
        "no non-finite counts": (default, gpu_check.PATCHES["per-step, non-finite counts off"]),
        "fixed (no gradient record)": (default, fixed),
        "fixed, no backward-end callback": (default, _both(fixed, *off(grad_capture.BackwardCapture, "_on_accumulated"))),
        "fixed, no log()": (default, _both(fixed, *off(recorder.Recorder, "log"))),
        "fixed, no global optimizer hooks": (default, _both(fixed, *off(instruments.Instruments, "_any_opt_pre",
                                                                        "_any_opt_post"))),
        "fixed, no optimizer hooks": (default, _both(fixed, *off(instruments.Instruments, "_opt_pre", "_opt_post"))),
        "fixed, no root forward hooks": (default, _both(fixed, *off(instruments.Instruments, "_root_pre",
                                                                    "_root_post"))),
    }


def timed(schedule, patch, steps, path) -> float:
    _, make, sizes = launch_count.MODELS[0]
    with patch() if patch else contextlib.nullcontext():
        rec, step = gpu_check.training(make, sizes, schedule, path, torch.device("cpu"))
        try:
            for _ in range(gpu_check.DEFAULT_DENSE_START + 10):
                step()
            started = time.perf_counter()
            for _ in range(steps):
                step()
            return (time.perf_counter() - started) / steps * 1e6
        finally:
            if rec is not None:
                rec.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import warnings
    warnings.simplefilter("ignore")      # switched-off root hooks make the recorder say so
    table = variants()
    times = {name: [] for name in table}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(args.reps):
            for name, (schedule, patch) in table.items():
                times[name].append(timed(schedule, patch, args.steps, Path(d) / f"{rep}.h5"))
    bare = statistics.median(times["bare"])
    print(f"torch {torch.__version__}; {launch_count.MODELS[0][0]}, width 16, CPU, device path forced; "
          f"{args.steps} steps x {args.reps} interleaved repetitions\n")
    print_table(times)
    print(f"\nbare step: {bare:.0f} us")
    return 0


def print_table(times: dict) -> None:
    """Each variant's median us/step and what it adds to "bare", paired by repetition."""
    print("| variant | us/step (median) | added to bare: median [min-max] |\n|---|---|---|")
    for name, values in times.items():
        added = [v - b for v, b in zip(values, times["bare"])]
        print(f"| {name} | {statistics.median(values):.0f} | {statistics.median(added):+.0f} "
              f"[{min(added):+.0f} .. {max(added):+.0f}] |")


if __name__ == "__main__":
    sys.exit(main())
