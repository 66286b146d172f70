"""How long does ``diagnose`` take on a 1 M-step run? Target: under 2 s.

Writes a synthetic run with the recorder's low-level writer: train/loss, sys/grad_norm and
sys/lr every step (3 M scalar rows), val/loss every 1000 steps, per-layer gradient norms
every step for 8 parameters (1 M rows), weight/activation stats every 100 steps,
snapshots every 10 000 steps. Then times open_run + diagnose (median of 3, cold reader).

    python benchmarks/bench_diagnose.py [--steps 1000000] [--keep PATH]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import diagnose, open_run  # noqa: E402
from recorder import format as fmt  # noqa: E402
from recorder.h5file import LayerLayout, RunFileWriter  # noqa: E402

PARAMS = [("0.weight", "0", (256, 64), 16384), ("0.bias", "0", (256,), 256), ("2.weight", "2", (256, 256), 65536),
          ("2.bias", "2", (256,), 256), ("4.weight", "4", (128, 256), 32768), ("4.bias", "4", (128,), 128),
          ("6.weight", "6", (10, 128), 1280), ("6.bias", "6", (10,), 10)]
MODULES = [("0", "Linear"), ("1", "ReLU"), ("2", "Linear"), ("3", "ReLU"), ("4", "Linear"), ("5", "ReLU"),
           ("6", "Linear")]


def write_run(path: Path, steps: int) -> None:
    rng = np.random.default_rng(0)
    w = RunFileWriter(path)
    layout = LayerLayout(params=PARAMS, modules=MODULES, snap_params=[0, 2, 4, 6],
                         snap_shapes=[(32, 32), (32, 32), (32, 32), (10, 32)])
    w.start({"name": path.stem, "schema_version": fmt.SCHEMA_VERSION}, layout)
    w.add_tags(["train/loss", "sys/grad_norm", "sys/lr", "val/loss"])
    block = 100_000
    for a in range(0, steps, block):
        s = np.arange(a, min(steps, a + block))
        n = len(s)
        level = 0.05 + 2.3 * np.exp(-s / (steps / 8))
        loss = level * rng.lognormal(0, 0.3, n)
        gn = 0.5 * rng.lognormal(0, 0.2, n)
        lr = np.full(n, 1e-3)
        vs = s[s % 1000 == 0]
        val = 0.08 + 2.3 * np.exp(-vs / (steps / 8))
        w.append_scalars(np.concatenate([s, s, s, vs]), np.concatenate([np.zeros(n), np.ones(n), np.full(n, 2),
                                                                         np.full(len(vs), 3)]),
                         np.concatenate([loss, gn, lr, val]), np.zeros(3 * n + len(vs)))
        g = (0.05 * rng.lognormal(0, 0.2, (n, len(PARAMS)))).astype(np.float32)
        w.append_records(fmt.GRADS, s, {"norm": g, "nonfinite": np.zeros((n, len(PARAMS)), np.int32)})
        ws = s[s % 100 == 0]
        k = len(ws)
        wn = np.ones((k, len(PARAMS)), np.float32)
        un = np.full((k, len(PARAMS)), 2e-3, np.float32)
        w.append_records(fmt.WEIGHTS, ws, {"norm": wn, "update_norm": un, "update_ratio": un / wn})
        m = len(MODULES)
        acts = {"mean": np.full((k, m), 0.3), "std": np.ones((k, m)), "absmax": np.full((k, m), 4.0),
                "frac_nonpos": np.full((k, m), 0.5), "dead_frac": np.full((k, m), 0.05),
                "frac_saturated": np.full((k, m), 0.01)}
        w.append_records(fmt.ACTS, ws, acts)
        ss = s[s % 10_000 == 0]
        snaps = rng.normal(0, 0.1, (len(ss), 4, 32, 32)).astype(np.float16)
        snaps[:, 3, 10:] = np.nan
        w.append_records(fmt.SNAPS, ss, {"weight": snaps})
        w.flush(int(s[-1]))
    w.close(last_step=steps - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "million.h5"
        t = time.perf_counter()
        write_run(path, args.steps)
        print(f"wrote {args.steps:,} steps in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        times = []
        for _ in range(3):
            t = time.perf_counter()
            with open_run(path) as run:
                findings = diagnose(run)
            times.append(time.perf_counter() - t)
        print(f"open_run + diagnose: median {np.median(times):.2f} s (runs: {', '.join(f'{x:.2f}' for x in times)}); "
              f"findings: {[f.symptom for f in findings] or 'none'}")


if __name__ == "__main__":
    main()
