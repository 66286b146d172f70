"""cProfile of the zero_grad() measurement's own functions on the device path (narrowed MLP, CPU):

    python benchmarks/results/host-path-2026-12-07/profile_grad_carried.py [--steps 1000]

Python time per step in records/grad_carried.py (cProfile inflates it; torch's own dispatch of
the tensor hook comes on top), for launch_count's 8-layer MLP, default schedules, zero_grad().
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gpu_check  # noqa: E402
import launch_count  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    n = ap.parse_args().steps
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    _, make, sizes = launch_count.MODELS[0]
    with tempfile.TemporaryDirectory() as d:
        rec, step = gpu_check.training(make, sizes, gpu_check.MODES[gpu_check.DEFAULT_MODE], Path(d) / "p.h5",
                                       torch.device("cpu"))
        for _ in range(gpu_check.DEFAULT_DENSE_START + 50):
            step()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            step()
        profile.disable()
        rec.close()
    own = 0.0
    for (filename, _, name), (_, calls, tt, ct, _) in pstats.Stats(profile).stats.items():
        if filename.endswith("grad_carried.py"):
            print(f"{name:24s} calls/step {calls / n:.2f}  own {tt / n * 1e6:5.2f} us  cumulative {ct / n * 1e6:5.2f} us")
            own += tt
    print(f"grad_carried.py own time: {own / n * 1e6:.2f} us/step (cProfile-inflated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
