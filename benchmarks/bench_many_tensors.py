"""watch() overhead on a model of 10,000 tiny parameter tensors (5000 x Linear(1, 1)), CPU, one
thread: a bare and a recorded copy alternate in blocks of 5 steps in one process; the ratio is
of the medians. Two schedules: "stats" (every step takes the stats_every statistics, as the
first dense_start steps do) and "plain" (steps between stats_every steps). Then the gradient
record taken when backward ends (what every step pays), its one-pass CPU path against the
general one, interleaved in one process (steadier than the step ratio on a loaded machine).
Trial 18 A11.

    python benchmarks/bench_many_tensors.py [--blocks 4] [--modules 5000] [--reps 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainspect.recorder import Recorder  # noqa: E402


def model(n):
    m = torch.nn.Sequential(*[torch.nn.Linear(1, 1) for _ in range(n)])
    return m, torch.optim.SGD(m.parameters(), lr=1e-4)


def steps(m, opt, n, rec=None, start=0):
    times = []
    for i in range(start, start + n):
        t = time.perf_counter()
        loss = m(torch.randn(8, 1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log({"train/loss": loss}, step=i)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--modules", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    bare, bare_opt = model(args.modules)
    steps(bare, bare_opt, 3)
    print("| schedule | bare ms/step | recorded ms/step | ratio | watch() s |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, kw in (("stats", dict(dense_start=10 ** 9)), ("plain", dict(dense_start=0, stats_every=10 ** 9))):
            m, opt = model(args.modules)
            with Recorder(Path(tmp) / f"{mode}.h5", hist_every=None, snapshot_every=None, **kw) as rec:
                t = time.perf_counter()
                rec.watch(m, opt)
                took = time.perf_counter() - t
                steps(m, opt, 2, rec)
                a, b = [], []
                for k in range(args.blocks):
                    a += steps(bare, bare_opt, 5)
                    b += steps(m, opt, 5, rec, start=2 + 5 * k)
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"| {mode} | {ma * 1e3:.0f} | {mb * 1e3:.0f} | {mb / ma:.2f} | {took:.2f} |", flush=True)
        record(Path(tmp) / "record.h5", args)


def record(path, args) -> None:
    from trainspect.recorder.records.gradients import Gradients

    m, opt = model(args.modules)
    with Recorder(path) as rec:
        rec.watch(m, opt)
        spec = next(r for r in rec._instruments.records if isinstance(r, Gradients))
        m(torch.randn(8, 1)).pow(2).mean().backward()
        times = {False: [], True: []}
        for _ in range(args.reps):
            for one_pass in (False, True):
                spec._plain_cpu = one_pass
                t = time.perf_counter()
                spec._compute_at_backward()
                spec._unchanged_since(spec._captured)
                times[one_pass].append(time.perf_counter() - t)
    general, fast = (statistics.median(times[k]) for k in (False, True))
    n = sum(1 for _ in m.parameters())
    print(f"\ngradient record at backward's end, {n} tensors: general path {general * 1e3:.1f} ms, one pass "
          f"{fast * 1e3:.1f} ms ({general / n * 1e6:.2f} -> {fast / n * 1e6:.2f} us a tensor)")


if __name__ == "__main__":
    main()
