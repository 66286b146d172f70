"""The recorder's overhead in a 4-rank DDP job on CPU (gloo) against its overhead in one process.

    python benchmarks/bench_ranks.py [--ranks 4] [--steps 200] [--reps 3] [--json out.json]

Model: the MLP of bench_recorder.py (128-256-256-256-10, SGD; batch 256 unless --batch), one thread per process.
Modes: ``bare`` (no recorder) and ``recorder`` (Recorder at its default schedules + watch(), the
loss logged every step: in the DDP job every rank records its own file). Each measurement is a
fresh launch (``torchrun --standalone`` for the job, a plain process for the single one), the
median step time over the steps after a 20-step warm-up (in the job: the slowest rank's median,
the pace of the job). Repetitions interleave bare and recorder launches; the ratio of a
repetition is recorder / bare of that repetition, and the reported ratio the median over them.
Goal (issue 14): the job's ratio equals the single process's within noise (the spread of the
repetitions is printed beside it).
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
mode, steps, out, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
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
times = []
for step in range(steps):
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if rec is not None:
        rec.log({"train/loss": loss})
    times.append(time.perf_counter() - t0)
if rec is not None:
    rec.close()
times = sorted(times[20:])
rank = dist.get_rank() if dist is not None else 0
with open(f"{out}.{rank}", "w") as fh:
    json.dump(times[len(times) // 2], fh)
if dist is not None:
    dist.barrier()
    dist.destroy_process_group()
"""


def launch(mode: str, ranks: int, steps: int, work: Path, batch: int) -> float:
    """Median step time of one launch (the slowest rank's, for a job)."""
    folder = Path(tempfile.mkdtemp(dir=work))
    script = folder / "worker.py"
    script.write_text(WORKER)
    out = folder / "median"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(script), mode, str(steps), str(out), str(batch)]
    else:
        cmd = [sys.executable, str(script), mode, str(steps), str(out), str(batch)]
    subprocess.run(cmd, env=env, cwd=folder, check=True, capture_output=True, timeout=900)
    return max(json.loads(Path(f"{out}.{r}").read_text()) for r in range(ranks))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256, help="rows per step (each rank's batch in the job)")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainspect-bench-ranks-"))
    ratios = {1: [], args.ranks: []}
    medians = {(n, m): [] for n in ratios for m in ("bare", "recorder")}
    for rep in range(args.reps):
        for n in ratios:
            bare = launch("bare", n, args.steps, work, args.batch)
            recorded = launch("recorder", n, args.steps, work, args.batch)
            medians[(n, "bare")].append(bare)
            medians[(n, "recorder")].append(recorded)
            ratios[n].append(recorded / bare)
            print(f"rep {rep}: {n} process(es): bare {bare * 1000:.2f} ms, recorder {recorded * 1000:.2f} ms, "
                  f"ratio {recorded / bare:.3f}", flush=True)
    print()
    print("| processes | bare step (median) | recorder step (median) | ratio (median over reps) | ratio min-max |")
    print("|---|---|---|---|---|")
    for n in ratios:
        print(f"| {n} | {statistics.median(medians[(n, 'bare')]) * 1000:.2f} ms "
              f"| {statistics.median(medians[(n, 'recorder')]) * 1000:.2f} ms "
              f"| {statistics.median(ratios[n]):.3f} | {min(ratios[n]):.3f}-{max(ratios[n]):.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): {"ratios": ratios[n]} for n in ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
