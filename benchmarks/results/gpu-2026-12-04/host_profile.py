"""Where the recorder's host time goes in a launch-bound GPU loop (companion to gpu_check.py).

    python benchmarks/results/gpu-2026-12-04/host_profile.py                 # on the CUDA machine
    python benchmarks/results/gpu-2026-12-04/host_profile.py --device cpu    # smoke test

On a launch-bound loop the GPU waits for the host, so the recorder's overhead is its host
time per step. This runs gpu_check.py's MLP with the default schedules under cProfile (the
timed loop under set_sync_debug_mode("error") as there) and prints the recorder's functions by
own time per step, plus the host time of the bare loop's step for scale.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # benchmarks/: gpu_check
import gpu_check  # noqa: E402


def loop(device, rec_kwargs, steps, warmup, path, profile):
    sizes = {} if device.type == "cuda" else {"depth": 2, "width": 64, "batch": 16}
    rec, step = gpu_check.training(gpu_check.mlp, sizes, rec_kwargs, path, device)

    for _ in range(warmup):
        step()
    gpu_check.synchronize(device)
    prof = cProfile.Profile() if profile else None
    with gpu_check.sync_debug(device):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        for _ in range(steps):
            step()
        if prof:
            prof.disable()
        host = time.perf_counter() - t0
    gpu_check.synchronize(device)
    wall = time.perf_counter() - t0
    if rec is not None:
        rec.close()
    return host / steps, wall / steps, prof


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    device = torch.device(args.device)
    warmup = gpu_check.DEFAULT_DENSE_START + 10   # past the recorder's dense start: steady state
    with tempfile.TemporaryDirectory() as d:
        for rep in range(3):   # interleaved, unprofiled: host ms/step and wall ms/step
            for name, kw in (("bare", None), ("default", {}), ("every", gpu_check.MODES[
                    "recorder, all instruments every step"])):
                host, wall, _ = loop(device, kw, args.steps, warmup, Path(d) / f"{name}{rep}.h5", False)
                print(f"rep {rep} {name:8s} host {1e3 * host:.3f} ms/step, wall {1e3 * wall:.3f} ms/step")
        for name, kw in (("default", {}), ("every", gpu_check.MODES["recorder, all instruments every step"])):
            _, _, prof = loop(device, kw, args.steps, warmup, Path(d) / f"prof-{name}.h5", True)
            stats = pstats.Stats(prof)
            rows = []
            for (file, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
                rows.append((tt, ct, nc, f"{Path(file).parent.name}/{Path(file).name}:{line}({func})"))
            rows.sort(reverse=True)
            total = sum(r[0] for r in rows)
            print(f"\n--- cProfile, MLP, {name}: {1e3 * total / args.steps:.3f} ms profiled host time per step; "
                  "top own-time functions (us/step own, us/step cumulative, calls/step)")
            for tt, ct, nc, where in rows[:30]:
                print(f"{1e6 * tt / args.steps:9.1f} {1e6 * ct / args.steps:9.1f} {nc / args.steps:7.2f}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
