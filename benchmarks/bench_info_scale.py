"""Does ``trainspect info`` scale with metric names and stay flat in memory on long runs?

Two parts, each file written once with the recorder's low-level writer (straight numpy
columns, no training), each measurement in a fresh subprocess:

- ``names``: runs with 50 k and 1 M metric names (3 points each). Reports the wall time of
  ``trainspect info RUN > /dev/null`` (median of 3; Python start-up included) and, in-process,
  open_run + summarize (the part the command adds). Goal (issue 15): info <= 1 s on 50 k names.
- ``rows``: runs of 1 M, 5 M (and with --big 25 M) scalar rows (4 metrics), plus the same
  run's layer records. Reports the peak RSS (ru_maxrss) of ``info``, of ``tail --once
  --advisor-every 0``, of ``tail --once`` with the advisor on (the default) and of 200 status
  polls (open_run + status()): it must not grow with the run.
- ``ranks``: a distributed run of 2 rank files (``exp.h5``, ``exp.rank1.h5``) of 1 M and 5 M
  scalar rows each (train loss, step time, data wait, gradient norm, non-finite count; rank 1
  a straggler). Reports the peak RSS of ``tail --once`` (advisor on, which reads every rank),
  ``diagnose`` and ``info`` (a line per rank). ``--old DIR``: also the same commands with
  ``PYTHONPATH=DIR`` (another checkout), each size old and new interleaved.

    python benchmarks/bench_info_scale.py [--part names|rows|ranks|all] [--big] [--keep DIR] [--old DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trainspect.recorder import format as fmt  # noqa: E402
from trainspect.recorder.h5file import RunFileWriter  # noqa: E402

BLOCK = 1_000_000


def write_names_run(path: Path, n_names: int, points: int = 3) -> None:
    w = RunFileWriter(path)
    w.start({"name": f"{n_names} names"})
    for lo in range(0, n_names, 100_000):
        w.add_tags([f"group{i // 1000}/metric_{i}" for i in range(lo, min(n_names, lo + 100_000))])
    tags = np.tile(np.arange(n_names, dtype=np.int32), points)
    steps = np.repeat(np.arange(points, dtype=np.int64), n_names)
    w.append_scalars(steps, tags, np.random.default_rng(0).random(len(tags)), np.zeros(len(tags)))
    w.close(last_step=points - 1)


def write_rows_run(path: Path, n_rows: int, n_metrics: int = 4) -> None:
    w = RunFileWriter(path)
    w.start({"name": f"{n_rows} rows"})
    w.add_tags(["train/loss", "val/loss", "train/acc", "sys/lr"][:n_metrics])
    rng = np.random.default_rng(0)
    for lo in range(0, n_rows, BLOCK):
        n = min(BLOCK, n_rows - lo)
        rows = np.arange(lo, lo + n)
        w.append_scalars(rows // n_metrics, (rows % n_metrics).astype(np.int32), rng.random(n), rows * 1e-3)
        w.flush(int(rows[-1] // n_metrics))
    w.close()


CHILD = """
import contextlib, json, os, resource, sys, time
what, path = sys.argv[1], sys.argv[2]
t, c = time.perf_counter(), time.process_time()
devnull = open(os.devnull, "w")   # not a StringIO: that would hold the output in this process
if what == "info":
    from trainspect.app.cli import main
    with contextlib.redirect_stdout(devnull):
        rc = main(["info", path])
elif what == "tail":
    from trainspect.app.cli import main
    with contextlib.redirect_stdout(devnull):
        rc = main(["tail", "--once", "--advisor-every", "0", path])
elif what == "tail_advisor":
    from trainspect.app.cli import main
    with contextlib.redirect_stdout(devnull):
        rc = main(["tail", "--once", path])
elif what == "diagnose":
    from trainspect.app.cli import main
    with contextlib.redirect_stdout(devnull):
        rc = main(["diagnose", path])
elif what == "summarize":
    from trainspect.analysis import open_run
    from trainspect.app.commands.info import summarize
    with open_run(path) as r:
        summarize(r)
    rc = 0
elif what == "status":
    from trainspect.analysis import open_run
    with open_run(path) as r:
        for _ in range(200):
            r.status()
    rc = 0
def peak_mb():
    # VmHWM: the peak of this program's own memory. ru_maxrss would also count the parent's
    # pages between fork and exec (a parent that just wrote a 700 MB file).
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "rc": rc,
                  "max_rss_mb": peak_mb()}))
"""


def child(what: str, path: Path, pythonpath: str | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    out = subprocess.run([sys.executable, "-c", CHILD, what, str(path)], capture_output=True, text=True,
                         timeout=3600, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def info_times(path: Path) -> tuple:
    """(wall, CPU) seconds of the ``trainspect info`` command, Python start-up included. CPU
    time (user + sys) is what the command costs; wall time also counts waiting for a core on
    a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainspect.app.cli", "info", str(path)], stdout=subprocess.DEVNULL,
                   check=True, timeout=3600)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def part_names(tmp: Path) -> None:
    print("| metric names | `trainspect info`: CPU (wall), median of 3 | open_run + summarize: CPU (wall) | `info` peak RSS | file |")
    print("|---|---|---|---|---|")
    for n in (50_000, 1_000_000):
        path = tmp / f"names_{n}.h5"
        if not path.exists():
            write_names_run(path, n)
        walls, cpus = zip(*(info_times(path) for _ in range(3)))
        inner, info = child("summarize", path), child("info", path)
        print(f"| {n:,} | {statistics.median(cpus):.2f} s ({statistics.median(walls):.2f} s) | "
              f"{inner['cpu']:.2f} s ({inner['seconds']:.2f} s) | {info['max_rss_mb']:.0f} MB | "
              f"{path.stat().st_size / 1e6:.0f} MB |", flush=True)


def part_rows(tmp: Path, big: bool) -> None:
    print("| scalar rows | file | `info` peak RSS (time) | `tail --once --advisor-every 0` peak RSS | "
          "`tail --once` (advisor on) peak RSS (time) | 200 status polls peak RSS |")
    print("|---|---|---|---|---|---|")
    for n in (1_000_000, 5_000_000) + ((25_000_000,) if big else ()):
        path = tmp / f"rows_{n}.h5"
        if not path.exists():
            write_rows_run(path, n)
        info, tail, status = child("info", path), child("tail", path), child("status", path)
        advised = child("tail_advisor", path)
        print(f"| {n / 1e6:.0f} M | {path.stat().st_size / 1e6:.0f} MB | {info['max_rss_mb']:.0f} MB "
              f"({info['cpu']:.2f} s CPU) | {tail['max_rss_mb']:.0f} MB | {advised['max_rss_mb']:.0f} MB "
              f"({advised['cpu']:.2f} s CPU) | {status['max_rss_mb']:.0f} MB |", flush=True)


RANK_METRICS = ("train/loss", fmt.SYS_STEP_TIME, fmt.SYS_DATA_WAIT, fmt.SYS_GRAD_NORM, fmt.SYS_NONFINITE_GRADS)


def write_rank_run(path: Path, rows: int, world: int = 2) -> None:
    """``world`` rank files of one launch, ``rows`` scalar rows each (one per metric and step)."""
    k = len(RANK_METRICS)
    steps_total = rows // k
    for rank in range(world):
        file = fmt.rank_path(path, rank)
        w = RunFileWriter(file)
        w.start({"name": "ranks", fmt.META_DISTRIBUTED: {"rank": rank, "world_size": world, "run_id": "bench",
                                                         "rank0_file": path.name}})
        w.add_tags(list(RANK_METRICS))
        rng = np.random.default_rng(rank)
        step_time = 0.1 * np.random.default_rng(99).lognormal(0, 0.05, steps_total)
        for lo in range(0, steps_total, BLOCK // k):
            hi = min(steps_total, lo + BLOCK // k)
            n = hi - lo
            t = np.arange(lo, hi) / steps_total
            cols = np.stack([(0.1 + 2.2 * np.exp(-12 * t)) * rng.lognormal(0, 0.15, n), step_time[lo:hi],
                             rng.lognormal(np.log(0.03 if rank == world - 1 else 2e-4), 0.3, n),
                             rng.lognormal(0, 0.3, n), np.zeros(n)], axis=1)
            steps = np.repeat(np.arange(lo, hi, dtype=np.int64), k)
            w.append_scalars(steps, np.tile(np.arange(k, dtype=np.int32), n), cols.ravel(), steps * 0.1)
            w.flush(hi - 1)
        w.close(last_step=steps_total - 1)


def part_ranks(tmp: Path, big: bool, old: str | None) -> None:
    """Peak RSS of the commands that read every rank of a distributed run, old vs new interleaved."""
    new = os.environ.get("PYTHONPATH")
    versions = ([("old", old)] if old else []) + [("new", new)]
    print("| rows per rank (2 ranks) | files | version | `tail --once` (advisor on) peak RSS (CPU) | "
          "`diagnose` peak RSS (CPU) | `info` peak RSS (CPU) |")
    print("|---|---|---|---|---|---|")
    for n in (1_000_000, 5_000_000) + ((25_000_000,) if big else ()):
        path = tmp / f"ranks_{n}.h5"
        if not path.exists() or not fmt.rank_path(path, 1).exists():
            write_rank_run(path, n)
        size = sum(fmt.rank_path(path, r).stat().st_size for r in range(2))
        for label, pythonpath in versions:
            got = {what: child(what, path, pythonpath) for what in ("tail_advisor", "diagnose", "info")}
            print(f"| {n / 1e6:.0f} M | {size / 1e6:.0f} MB | {label} | "
                  + " | ".join(f"{g['max_rss_mb']:.0f} MB ({g['cpu']:.1f} s)" for g in got.values()) + " |",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("names", "rows", "ranks", "all"), default="all")
    ap.add_argument("--old", metavar="DIR", help="ranks part: also run the commands with PYTHONPATH=DIR")
    ap.add_argument("--big", action="store_true", help="also a 25 M-row run (700 MB file)")
    ap.add_argument("--keep", metavar="DIR", help="write (and reuse) the run files here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.part in ("names", "all"):
            part_names(tmp)
        if args.part in ("rows", "all"):
            part_rows(tmp, args.big)
        if args.part in ("ranks", "all"):
            part_ranks(tmp, args.big, args.old)
    print(f"\n(fmt schema {fmt.SCHEMA_VERSION}; 2-core shared machine: compare rows within a table)")


if __name__ == "__main__":
    main()
