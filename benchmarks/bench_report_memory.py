"""Peak memory of diagnose, the HTML report and the CSV export on a wide, long run.

    python benchmarks/bench_report_memory.py [--steps 40000] [--keep DIR] [--reps 2]

The run (written with the recorder's low-level writer, as bench_diagnose.py's ``wide`` case):
500 parameters (250 Linear + 250 ReLU modules), gradient records every step, weight and
activation statistics every 50 steps, snapshots every 10 000 steps; train/loss, sys/grad_norm
and sys/lr every step. Each operation runs in a fresh subprocess that first imports
everything, opens the run and reads the metric names; its extra peak RSS is VmHWM after the
operation minus VmRSS before it (the peak is reset first where Linux allows). Goal (issue 10):
report and export within 2x of diagnose's extra peak.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_diagnose  # noqa: E402

OPS = ("diagnose", "report", "export")


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(path: Path, op: str, out_dir: Path) -> dict:
    """In the child: the extra peak RSS and the time of one operation on a warm reader."""
    from trainspect.analysis import diagnose, open_run
    from trainspect.app.report import export_report
    from trainspect.app.report.csv_export import export_run_csv
    from trainspect.app.report import content, html  # noqa: F401  (imported before measuring)

    with open_run(path) as run:
        run.scalar_names()
        try:   # reset the peak to the current RSS (Linux >= 4.0), so imports do not hide it
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        before = _status_kb("VmRSS")
        t = time.perf_counter()
        if op == "diagnose":
            diagnose(run)
        elif op == "report":
            export_report([run], out_dir / "report.html")
        else:
            export_run_csv(run, out_dir / "csv")
        seconds = time.perf_counter() - t
        return {"extra_mb": (_status_kb("VmHWM") - before) / 1024, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep (and reuse) the run file in")
    ap.add_argument("--measure", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure is not None:
        path, op, out = args.measure
        print(json.dumps(measure(Path(path), op, Path(out))))
        return
    bench_diagnose.CASES["report"] = (args.steps, *bench_diagnose.wide_layout(), 50, 10_000, 5_000)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"wide{args.steps}.h5"
        if not path.exists():
            bench_diagnose.write_run(path, "report")
        print(f"run: 500 parameters x {args.steps:,} steps, {path.stat().st_size / 1e6:.0f} MB\n")
        results = {op: [] for op in OPS}
        for r in range(args.reps):       # interleaved: every operation once per round
            for op in OPS:
                out = Path(tmp) / f"{op}{r}"
                out.mkdir()
                proc = subprocess.run([sys.executable, __file__, "--measure", str(path), op, str(out)],
                                      capture_output=True, text=True, check=True)
                results[op].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = statistics.median(x["extra_mb"] for x in results["diagnose"])
    print("| operation | extra peak RSS, MB (median) | x diagnose | seconds (median) |")
    print("|---|---|---|---|")
    for op in OPS:
        mb = statistics.median(x["extra_mb"] for x in results[op])
        secs = statistics.median(x["seconds"] for x in results[op])
        print(f"| {op} | {mb:.0f} | {mb / max(base, 1e-9):.2f} | {secs:.1f} |")


if __name__ == "__main__":
    main()
