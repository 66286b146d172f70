"""What the zero_grad() measurement (records/grad_carried.py) adds to the device path's host time.

    python benchmarks/results/host-path-2026-12-07/grad_carried.py [--steps 1000] [--reps 5]

launch_count's narrowed MLP (gpu_check's 8 layers, width 16) on the CPU with the recorder forced
onto its GPU code path, default schedules, interleaved repetitions (as host-path-2026-12-06/
parts.py): bare, default, and default without the GradCarried record (its hook and rows). The
training loop calls optimizer.zero_grad() (set_to_none, torch's default): the measurement's
cheap case, one Python call before each backward's accumulation plus one host row per update.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host-path-2026-12-06"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gpu_check  # noqa: E402
import parts  # noqa: E402
from trainspect.recorder import instruments  # noqa: E402
from trainspect.recorder.records.grad_carried import GradCarried  # noqa: E402


def without_grad_carried():
    return mock.patch.object(instruments, "RECORDS", tuple(r for r in instruments.RECORDS if r is not GradCarried))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    default = gpu_check.MODES[gpu_check.DEFAULT_MODE]
    table = {"bare": (None, None), "default": (default, None),
             "default without grad_carried": (default, without_grad_carried)}
    times = {name: [] for name in table}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(args.reps):
            for name, (schedule, patch) in table.items():
                times[name].append(parts.timed(schedule, patch, args.steps, Path(d) / f"{rep}.h5"))
    print(f"torch {torch.__version__}; 8-layer MLP, width 16, CPU, device path forced; "
          f"{args.steps} steps x {args.reps} interleaved repetitions\n")
    parts.print_table(times)
    diff = [a - b for a, b in zip(times["default"], times["default without grad_carried"])]
    print(f"\ngrad_carried's share, paired by repetition: median {statistics.median(diff):+.1f} us/step "
          f"[{min(diff):+.1f} .. {max(diff):+.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
