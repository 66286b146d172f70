"""Every instrument on every step: fused statistics against the per-tensor ones, in one run.

    python benchmarks/bench_fused_stats.py [--steps 60] [--reps 7]

On the CPU the recorder computes the statistics with its C extension (recorder/_native.c, through
host_stats.py: one pass per tensor for the activation rows, two for each histogram, one C call
for all snapshots and for all weight/update norms), or, where it is not built, with numpy
(host_stats' fallback: a few passes and one bincount); on a GPU with a few multi-tensor ops
(device_stats.fused_histograms, per-leaf sums and counts turned into fractions once per forward,
activation_raw / activation_rows). The
"per-tensor" variant swaps in record specs that compute them the way the recorder did before
(a dozen ops per tensor, torch.histc per histogram; kept here as the reference), through the
spec registry; "numpy" is the recorder without its C extension. Rounds interleave bare / fused /
numpy / per-tensor training of the models of
bench_recorder.py; ratios are the median over rounds of (variant / bare of the same round),
with min-max, for the wall time, the training thread's CPU time and the whole process's CPU
time (both robust to other processes on a shared machine; the process's includes the writer
thread, so work moved off the training thread shows there).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recorder import mlp, timed_training, transformer  # noqa: E402

import trainspect.recorder.instruments as instruments  # noqa: E402
from trainspect.recorder import host_stats  # noqa: E402
from trainspect.recorder import format as fmt  # noqa: E402
from trainspect.recorder.device_stats import dense_values  # noqa: E402
from trainspect.recorder.records import registry  # noqa: E402
from trainspect.recorder.records.activations import Activations  # noqa: E402
from trainspect.recorder.records.histograms import Histograms  # noqa: E402

EVERY_STEP = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}


# ---------------------------------------------------------------- the per-tensor reference
def histc_histogram(t):
    if t is None or t.numel() == 0:
        return torch.zeros(fmt.HIST_BINS), torch.full((2,), math.nan)
    x = dense_values(t).reshape(-1).float()
    lo, hi = torch.aminmax(x)
    y = (x - lo) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.histc(y, bins=fmt.HIST_BINS, min=0.0, max=1.0), torch.stack([lo, hi])


class PerTensorHistograms(Histograms):
    def compute(self):
        results = [histc_histogram(t) for t in list(self.w.params) + [p.grad for p in self.w.params]]
        counts = torch.stack([c for c, _ in results]).double()
        ranges = torch.stack([r for _, r in results]).double()
        return torch.cat([counts.reshape(-1), ranges.reshape(-1)])


def per_leaf_stats(output, bounds):
    x = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
        return None
    x = x.detach().float()
    flat = x.reshape(-1)
    n = flat.numel()
    mean = flat.mean()
    centred = flat - mean
    std = torch.sqrt(torch.dot(centred, centred) / n)
    lo, hi = torch.aminmax(flat)
    absmax = torch.maximum(-lo, hi)
    frac_nonpos = torch.count_nonzero(flat <= 0) / n
    unit = x.dim() - 1 if x.dim() == 3 else (0 if x.dim() == 1 else 1)
    others = tuple(d for d in range(x.dim()) if d != unit)
    per_unit = x.amax(dim=others) if others else x
    dead = torch.count_nonzero(per_unit <= 0) / per_unit.numel()
    if bounds is not None:
        band = 0.01 * (bounds[1] - bounds[0])
        sat = torch.count_nonzero((flat <= bounds[0] + band) | (flat >= bounds[1] - band)) / n
    else:
        sat = torch.count_nonzero(flat.abs() > 5.0) / n
    return torch.stack([mean, std, absmax, frac_nonpos, dead, sat])


class PerLeafActivations(Activations):
    def _store(self, cap, i, output):
        stats = per_leaf_stats(output, self.bounds[i])
        cap[i] = stats if stats is not None else False

    def compute(self, cap):
        found = [c for c in cap if c is not None and c is not False]
        if not found:
            return None
        nan_row = torch.full((len(fmt.ACT_FIELDS),), math.nan)
        return torch.stack([c if (c is not None and c is not False) else nan_row for c in cap])


PER_TENSOR = tuple({Histograms: PerTensorHistograms, Activations: PerLeafActivations}.get(r, r)
                   for r in registry.RECORDS)


def run_steps(make, variant, steps, path):
    """(wall, training-thread CPU) seconds per step of one variant."""
    instruments.RECORDS = PER_TENSOR if variant == "per-tensor" else registry.RECORDS
    native = host_stats._native
    if variant == "numpy":            # the fallback where the C extension is not built
        host_stats._native = None
    try:
        return timed_training(make, None if variant == "bare" else EVERY_STEP, steps, path)
    finally:
        instruments.RECORDS = registry.RECORDS
        host_stats._native = native


def ratio_cell(times, variant, k):
    ratios = [t[k] / b[k] for t, b in zip(times[variant], times["bare"])]
    return f"x{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; every instrument every step\n")
    # fused: the recorder as installed (with its C extension where built); numpy: the same
    # without the extension; per-tensor: the reference above
    variants = ("bare", "fused", "numpy", "per-tensor") if host_stats._native else ("bare", "fused", "per-tensor")
    print(f"C extension: {'built' if host_stats._native else 'not built (fused = numpy)'}\n")
    print("| model | bare ms/step (wall, CPU) | " + " | ".join(
        f"{v} / bare: wall | thread CPU | process CPU" for v in variants[1:]) + " |")
    print("|---|---|" + "---|" * (3 * len(variants) - 3))
    with tempfile.TemporaryDirectory() as d:
        for name, make in (("MLP 128-256x3-10, batch 64", mlp),
                           ("TransformerEncoder d64x2, seq 32, batch 16", transformer)):
            times = {v: [] for v in variants}
            for r in range(args.reps):    # interleaved: every variant once per round
                for v in variants:
                    times[v].append(run_steps(make, v, args.steps, Path(d) / f"{make.__name__}{r}{v}.h5"))
            bare = [1e3 * statistics.median(t[k] for t in times["bare"]) for k in (0, 1)]
            print(f"| {name} | {bare[0]:.2f}, {bare[1]:.2f} | " + " | ".join(
                ratio_cell(times, v, k) for v in variants[1:] for k in (0, 1, 2)) + " |")


if __name__ == "__main__":
    main()
