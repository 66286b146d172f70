"""The recorder's overhead in a DDP job on CPU (gloo) with 2 and 4 ranks against its overhead in one process.

    nice -n -10 python benchmarks/bench_ranks.py [--ranks 2,4] [--steps 300] [--reps 5] [--json out.json]

Model: the MLP of bench_recorder.py (128-256-256-256-10, SGD; batch 256 unless --batch), one thread per process.
Modes: ``bare`` (no recorder) and ``recorder`` (Recorder at its default schedules + watch(), the
loss logged every step: in the DDP job every rank records its own file). Each measurement is a
fresh launch (``torchrun --standalone`` for a job, a plain process for the single one).

Measured per rank over the steps after the first ``--skip`` (100: warm-up, and the recorder's
dense start, every statistic on each of the first 100 steps), per step:
- training-thread CPU time (``time.thread_time``): the work the recorder adds to the training
  loop; on a machine with fewer cores than ranks it is far less disturbed than wall time, which
  also holds the waits for descheduled ranks at the all-reduce;
- process CPU time (``time.process_time``): the same plus the recorder's writer thread (and
  gloo's threads, in both modes alike);
- wall time: the median step (in a job, the slowest rank's), for reference.
A launch's CPU figures are the mean over its ranks. Rounds interleave the modes, alternating
which goes first (bare-recorder, recorder-bare, ...), and every process count runs in every
round; the ratio of a round is recorder / bare within that round, reported as the median over
rounds with its [min-max]. Goal (issue 14): the job's ratio equals the single process's within
noise, i.e. their spreads overlap.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
mode, steps, out, batch, WARM = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
dist = None
if "RANK" in os.environ:
    import torch.distributed as dist
    dist.init_process_group("gloo")
torch.manual_seed(0)
dims = [128, 256, 256, 256, 10]
layers = []
for a, b in zip(dims[:-1], dims[1:]):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
model = torch.nn.Sequential(*layers[:-1])
if dist is not None:
    from torch.nn.parallel import DistributedDataParallel as DDP
    model = DDP(model)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(batch, 128), torch.randint(0, 10, (batch,))
rec = None
if mode == "recorder":
    from trainspect import Recorder
    rec = Recorder(os.path.join(os.path.dirname(out), "run.h5"), overwrite=True)
    rec.watch(model, opt)
walls = []
for step in range(steps):
    if step == WARM:
        thread0, process0 = time.thread_time(), time.process_time()
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if rec is not None:
        rec.log({"train/loss": loss})
    walls.append(time.perf_counter() - t0)
n = steps - WARM
thread_cpu, process_cpu = (time.thread_time() - thread0) / n, (time.process_time() - process0) / n
if rec is not None:
    rec.close()
walls = sorted(walls[WARM:])
rank = dist.get_rank() if dist is not None else 0
with open(f"{out}.{rank}", "w") as fh:
    json.dump({"thread_cpu": thread_cpu, "process_cpu": process_cpu, "wall": walls[len(walls) // 2]}, fh)
if dist is not None:
    dist.barrier()
    dist.destroy_process_group()
"""
FIGURES = ("thread_cpu", "process_cpu", "wall")


def launch(mode: str, ranks: int, steps: int, work: Path, batch: int, skip: int) -> dict:
    """Per step: training-thread and process CPU time (mean over ranks), median wall time
    (the slowest rank's). ``ranks`` 0: one plain process; else a torchrun DDP job."""
    folder = Path(tempfile.mkdtemp(dir=work))
    script = folder / "worker.py"
    script.write_text(WORKER)
    out = folder / "median"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if ranks > 0:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(script), mode, str(steps), str(out), str(batch), str(skip)]
    else:
        cmd = [sys.executable, str(script), mode, str(steps), str(out), str(batch), str(skip)]
    subprocess.run(cmd, env=env, cwd=folder, check=True, capture_output=True, timeout=900)
    per_rank = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(max(1, ranks))]
    return {"thread_cpu": statistics.mean(r["thread_cpu"] for r in per_rank),
            "process_cpu": statistics.mean(r["process_cpu"] for r in per_rank),
            "wall": max(r["wall"] for r in per_rank)}


def _label(ranks: int) -> str:
    return "1 process" if ranks == 0 else f"DDP job, {ranks} rank{'s' if ranks > 1 else ''}"


def spread(values) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="2,4",
                    help="rank counts of the DDP jobs, comma-separated (1: a one-rank job); one plain process always runs")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--skip", type=int, default=100,
                    help="first steps not measured: warm-up and the recorder's dense start (default 100)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256, help="rows per step (each rank's batch in the job)")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainspect-bench-ranks-"))
    sizes = [0, *(int(n) for n in args.ranks.split(",") if int(n) > 0)]   # 0: the plain process
    got = {(n, m): [] for n in sizes for m in ("bare", "recorder")}
    ratios = {(n, f): [] for n in sizes for f in FIGURES}
    for rep in range(args.reps):
        for n in sizes:
            modes = ("bare", "recorder") if rep % 2 == 0 else ("recorder", "bare")
            one = {m: launch(m, n, args.steps, work, args.batch, args.skip) for m in modes}
            for m in modes:
                got[(n, m)].append(one[m])
            for f in FIGURES:
                ratios[(n, f)].append(one["recorder"][f] / one["bare"][f])
            print(f"round {rep}: {_label(n)}, " + ", ".join(
                f"{f} {one['bare'][f] * 1e3:.2f} -> {one['recorder'][f] * 1e3:.2f} ms (x{ratios[(n, f)][-1]:.3f})"
                for f in FIGURES), flush=True)
    print()
    print("| run | bare / recorder per step, median (train thread CPU; process CPU; wall) "
          "| ratio train-thread CPU | ratio process CPU | ratio wall |")
    print("|---|---|---|---|---|")
    for n in sizes:
        med = {(m, f): statistics.median(r[f] for r in got[(n, m)]) * 1e3 for m in ("bare", "recorder") for f in FIGURES}
        cells = "; ".join(f"{med[('bare', f)]:.2f} / {med[('recorder', f)]:.2f} ms" for f in FIGURES)
        print(f"| {_label(n)} | {cells} | " + " | ".join(spread(ratios[(n, f)]) for f in FIGURES) + " |")
    print("(ratio: recorder / bare within a round, median [min-max] over rounds; equal within noise = spreads overlap)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {_label(n): {f: ratios[(n, f)] for f in FIGURES} | {m: got[(n, m)] for m in ("bare", "recorder")}
             for n in sizes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
