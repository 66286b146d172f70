"""How long does ``diagnose`` take, and how much memory does it need, on large runs?

Two cases, each written with the recorder's low-level writer and then diagnosed in a fresh
subprocess (so time and peak memory are not polluted by the writer or the other case):

- ``long``: 1 M steps; train/loss, sys/grad_norm and sys/lr every step (3 M scalar rows),
  val/loss every 1000 steps, per-layer gradient norms every step for 8 parameters (1 M rows),
  weight/activation stats every 100 steps, snapshots every 10 000 steps. Target: < 2 s.
- ``wide``: 500 parameters (250 Linear + 250 ReLU modules), gradient records every step for
  100 k steps (a 200 MB float32 table per field), weight/activation stats every 50 steps
  (2 k records), snapshots every 10 000 steps. Targets: < 2 s and < 300 MB extra peak RSS.

The child reports open_run + diagnose wall time (median of 3, cold reader each time) and
the extra peak RSS of the first diagnose: VmHWM after it minus VmRSS right before it.

    python benchmarks/bench_diagnose.py [--case long|wide|all] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainspect.recorder import format as fmt  # noqa: E402
from trainspect.recorder.h5file import LayerLayout, RunFileWriter  # noqa: E402

LONG_PARAMS = [("0.weight", "0", (256, 64), 16384), ("0.bias", "0", (256,), 256), ("2.weight", "2", (256, 256), 65536),
               ("2.bias", "2", (256,), 256), ("4.weight", "4", (128, 256), 32768), ("4.bias", "4", (128,), 128),
               ("6.weight", "6", (10, 128), 1280), ("6.bias", "6", (10,), 10)]
LONG_MODULES = [("0", "Linear"), ("1", "ReLU"), ("2", "Linear"), ("3", "ReLU"), ("4", "Linear"), ("5", "ReLU"),
                ("6", "Linear")]


def wide_layout(n_linear: int = 250):
    params, modules = [], []
    for i in range(n_linear):
        lin = str(2 * i)
        params += [(f"{lin}.weight", lin, (64, 64), 4096), (f"{lin}.bias", lin, (64,), 64)]
        modules += [(lin, "Linear"), (str(2 * i + 1), "ReLU")]
    return params, modules


CASES = {
    # name: (steps, params, modules, weights/acts every, snapshot every, scalar block)
    "long": (1_000_000, LONG_PARAMS, LONG_MODULES, 100, 10_000, 100_000),
    "wide": (100_000, *wide_layout(), 50, 10_000, 5_000),
}


def write_run(path: Path, case: str) -> None:
    steps, params, modules, stats_every, snap_every, block = CASES[case]
    rng = np.random.default_rng(0)
    w = RunFileWriter(path)
    snap_params = [i for i, p in enumerate(params) if len(p[2]) == 2][:16]
    layout = LayerLayout(params=params, modules=modules, snap_params=snap_params,
                         snap_shapes=[(min(32, params[i][2][0]), min(32, params[i][2][1])) for i in snap_params])
    w.start({"name": path.stem, "schema_version": fmt.SCHEMA_VERSION}, layout)
    w.add_tags(["train/loss", "sys/grad_norm", "sys/lr", "val/loss"])
    p, m = len(params), len(modules)
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
        g = (0.05 * rng.lognormal(0, 0.2, (n, p))).astype(np.float32)
        w.append_records(fmt.GRADS, s, {"norm": g, "nonfinite": np.zeros((n, p), np.int32)})
        ws = s[s % stats_every == 0]
        k = len(ws)
        wn = np.ones((k, p), np.float32)
        un = np.full((k, p), 2e-3, np.float32)
        w.append_records(fmt.WEIGHTS, ws, {"norm": wn, "update_norm": un, "update_ratio": un / wn})
        acts = {"mean": np.full((k, m), 0.3), "std": np.ones((k, m)), "absmax": np.full((k, m), 4.0),
                "frac_nonpos": np.full((k, m), 0.5), "dead_frac": np.full((k, m), 0.05),
                "frac_saturated": np.full((k, m), 0.01)}
        w.append_records(fmt.ACTS, ws, acts)
        ss = s[s % snap_every == 0]
        if len(ss):
            snaps = rng.normal(0, 0.1, (len(ss), len(snap_params), 32, 32)).astype(np.float16)
            w.append_records(fmt.SNAPS, ss, {"weight": snaps})
        w.flush(int(s[-1]))
    w.close(last_step=steps - 1)


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(path: Path) -> dict:
    """In the child: time open_run + diagnose (3 cold readers) and the extra peak RSS of the first."""
    from trainspect.analysis import diagnose, open_run
    with open_run(path) as run:          # warm imports and the file cache once
        run.scalar_names()
    rss_before = _status_kb("VmRSS")
    times, findings = [], []
    for i in range(3):
        t = time.perf_counter()
        with open_run(path) as run:
            findings = diagnose(run)
        times.append(time.perf_counter() - t)
        if i == 0:
            extra_mb = (_status_kb("VmHWM") - rss_before) / 1024
    return {"times": times, "extra_mb": extra_mb, "findings": [f.symptom for f in findings]}


def run_case(case: str, directory: Path) -> dict:
    path = directory / f"{case}.h5"
    if not path.exists():
        t = time.perf_counter()
        write_run(path, case)
        print(f"[{case}] wrote {CASES[case][0]:,} steps in {time.perf_counter() - t:.1f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)", flush=True)
    out = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"[{case}] open_run + diagnose: median {np.median(res['times']):.2f} s "
          f"(runs: {', '.join(f'{x:.2f}' for x in res['times'])}); extra peak RSS {res['extra_mb']:.0f} MB; "
          f"findings: {res['findings'] or 'none'}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep (and reuse) the run files in")
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    cases = list(CASES) if args.case == "all" else [args.case]
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        for case in cases:
            run_case(case, directory)


if __name__ == "__main__":
    main()
