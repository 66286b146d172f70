"""CSV export of a long run against numpy.savetxt of the same columns, in one run.

    python benchmarks/bench_export.py [--rounds 3] [--keep DIR]

The run is bench_diagnose.py's ``long`` case: 1 M steps, 8 parameters with a gradient record
every step (grad_norm and grad_nonfinite tables of 1 M x 8), train/loss, sys/grad_norm and
sys/lr every step, val/loss every 1000, weight/activation statistics every 100 steps.

- ``trainspect``: ``export_run_csv`` (every metric and layer statistic, as ``trainspect export``).
- ``numpy``: the same files with the same columns through ``np.savetxt`` (step as an integer,
  float64 as ``%.17g`` and float32 as ``%.9g``: exact round trip, like the export), the data
  read through the same ``Run`` calls (whole series and tables at once).

Rounds interleave the two; the ratio is the median over rounds of (trainspect / numpy of the
same round), with min-max. Goal (issue 15): <= 3x numpy.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_diagnose  # noqa: E402

from trainspect.analysis import open_run  # noqa: E402
from trainspect.app.report.csv_export import export_run_csv  # noqa: E402


def savetxt_export(run, directory: Path) -> int:
    """The export's files written with numpy.savetxt; returns the number of values written."""
    written = 0
    for i, name in enumerate(run.scalar_names()):
        s = run.scalar(name)
        np.savetxt(directory / f"s{i}.csv", np.column_stack([s.steps, s.values, s.wall]), delimiter=",",
                   fmt=["%d", "%.17g", "%.17g"], header="step,value,wall_time", comments="")
        written += 3 * len(s)
    for stat in run.layer_stat_names():
        ls = run.layer_stat(stat)
        table = np.column_stack([ls.steps, ls.values])
        np.savetxt(directory / f"l_{stat}.csv", table, delimiter=",", fmt=["%d"] + ["%.9g"] * len(ls.layers),
                   header=",".join(["step", *ls.layers]), comments="")
        written += table.size
    return written


def timed(path: Path, variant: str, out: Path) -> float:
    out.mkdir()
    t = time.perf_counter()
    with open_run(path) as run:
        if variant == "trainspect":
            export_run_csv(run, out)
        else:
            savetxt_export(run, out)
    seconds = time.perf_counter() - t
    shutil.rmtree(out)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep (and reuse) the run file in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "long.h5"
        if not path.exists():
            bench_diagnose.write_run(path, "long")
        with open_run(path) as run:
            rows = {n: len(run.scalar(n)) for n in run.scalar_names()}
            stats = {s: sum(len(b.steps) for b in run.layer_stat_chunks(s)) for s in run.layer_stat_names()}
        print(f"run: {sum(rows.values()):,} scalar rows in {len(rows)} metrics, layer tables "
              + ", ".join(f"{s} {n:,} x 8" for s, n in stats.items()) + "\n")
        times = {"trainspect": [], "numpy": []}
        for r in range(args.rounds):
            for variant in times:
                times[variant].append(timed(path, variant, Path(tmp) / f"{variant}{r}"))
    ratios = [a / b for a, b in zip(times["trainspect"], times["numpy"])]
    print("| export | seconds (median, min-max) |")
    print("|---|---|")
    for variant, t in times.items():
        print(f"| {variant} | {statistics.median(t):.1f} ({min(t):.1f}-{max(t):.1f}) |")
    print(f"\ntrainspect / numpy.savetxt: x{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}), "
          f"goal <= x3")


if __name__ == "__main__":
    main()
