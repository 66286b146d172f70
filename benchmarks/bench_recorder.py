"""Recorder overhead on this CPU, in one run; prints markdown tables.

    python benchmarks/bench_recorder.py [--steps 60] [--reps 5]

1. Training step time, bare vs the recorder with default schedules vs every instrument on
   every step, for a small MLP and a tiny TransformerEncoder (repetitions interleaved; the
   ratio is the median over repetitions of (mode / bare of the same repetition)). Every mode
   is timed after the recorder's dense start (steady state); the "default, first 100 steps"
   row times the dense start itself (the stats_every statistics on every step).
2. The cost of each scheduled instrument when run on every step (to choose the defaults).
3. log() cost per value on the training thread (target <= 5 us for Python floats).
4. Writer throughput: RunFileWriter appending scalar rows (values/s), and end to end
   through Recorder.log() + flush().
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainspect.recorder import Recorder  # noqa: E402
from trainspect.recorder.recorder import DEFAULT_DENSE_START  # noqa: E402
from trainspect.recorder.h5file import LayerLayout, RunFileWriter  # noqa: E402

torch.set_num_threads(1)


def mlp():
    torch.manual_seed(0)
    layers, width = [], 256
    dims = [128, width, width, width, 10]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])

    def batch():
        return torch.randn(64, 128), torch.randint(0, 10, (64,))
    return model, batch, torch.nn.functional.cross_entropy


class TinyTransformer(torch.nn.Module):
    def __init__(self, vocab=256, d=64, layers=2, seq=32):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.zeros(seq, d))
        layer = torch.nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens) + self.pos))


def transformer():
    torch.manual_seed(0)
    model = TinyTransformer()

    def batch():
        t = torch.randint(0, 256, (16, 33))
        return t[:, :-1], t[:, 1:]

    def loss_fn(out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return model, batch, loss_fn


MODES = {
    "bare": None,
    "default": {},
    "all every step": {"stats_every": 1, "hist_every": 1, "snapshot_every": 1},
    "stats every step": {"stats_every": 1, "hist_every": 0, "snapshot_every": 0},
    "hists every step": {"stats_every": 0, "hist_every": 1, "snapshot_every": 0},
    "snaps every step": {"stats_every": 0, "hist_every": 0, "snapshot_every": 1},
    "grads only": {"stats_every": 0, "hist_every": 0, "snapshot_every": 0},
}


# Steady state: the first DEFAULT_DENSE_START steps take the stats_every statistics on every
# step (the recorder's dense start), so the timed steps come after them; the dense start's own
# cost is the "default, first 100 steps" row.
STEADY_WARMUP = 5 + DEFAULT_DENSE_START
DENSE_MODE = "default, first 100 steps"


def run_steps(make, mode_kwargs, steps, tmp: Path, tag: str, warmup: int = STEADY_WARMUP) -> tuple[float, float]:
    """(wall, training-thread CPU) seconds per training step (``mode_kwargs`` None: no recorder)."""
    return timed_training(make, mode_kwargs, steps, tmp / f"{tag}.h5", warmup=warmup)


def timed_training(make, mode_kwargs, steps, path: Path, warmup: int = 5) -> tuple[float, float, float]:
    """(wall, training-thread CPU, whole-process CPU) seconds per step after ``warmup`` untimed
    steps. The CPU times leave out what other processes take from this one on a shared machine;
    the wall time and the process CPU include the writer thread (work moved onto it is not free:
    on the CPU the two threads share the GIL)."""
    model, batch, loss_fn = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [batch() for _ in range(8)]
    rec = None
    if mode_kwargs is not None:
        rec = Recorder(path, **mode_kwargs)
        rec.watch(model, opt)
    for i in range(warmup):   # warm-up (allocator, first hooks; the dense start, see STEADY_WARMUP)
        x, y = data[i % 8]
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    for i in range(steps):
        x, y = data[i % 8]
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log({"train/loss": loss})
    out = ((time.perf_counter() - t0) / steps, (time.thread_time() - c0) / steps, (time.process_time() - p0) / steps)
    if rec is not None:
        rec.close()
    return out


def overhead_table(steps: int, reps: int, tmp: Path) -> list[str]:
    out = ["| model | mode | ms/step (median) | ratio to bare (median) | ratio (min) | training-thread CPU ratio (median) |",
           "|---|---|---|---|---|---|"]
    modes = {**MODES, DENSE_MODE: {}}
    for name, make in (("MLP 128-256x3-10, batch 64", mlp), ("TransformerEncoder d64x2, seq 32, batch 16", transformer)):
        times = {m: [] for m in modes}
        for r in range(reps):           # interleaved: every mode once per repetition
            for m, kw in modes.items():
                warmup, n = (5, min(steps, DEFAULT_DENSE_START - 5)) if m == DENSE_MODE else (STEADY_WARMUP, steps)
                times[m].append(run_steps(make, kw, n, tmp, f"{make.__name__}{r}{m.replace(' ', '').replace(',', '')}",
                                          warmup))
        for m in modes:
            ratios = [t[0] / b[0] for t, b in zip(times[m], times["bare"])]
            cpu = [t[1] / b[1] for t, b in zip(times[m], times["bare"])]
            out.append(f"| {name} | {m} | {1e3 * statistics.median(t[0] for t in times[m]):.2f} | "
                       f"{statistics.median(ratios):.3f} | {min(ratios):.3f} | {statistics.median(cpu):.3f} |")
    return out


def log_cost(tmp: Path) -> list[str]:
    out = ["| log() call | µs per value (median of 5) |", "|---|---|"]
    cases = {
        "10 Python floats per call": ({f"m{i}": 0.5 for i in range(10)}, 10),
        "1 Python float per call": ({"loss": 0.5}, 1),
        "1 numpy float32 per call": ({"loss": np.float32(0.5)}, 1),
        "1 CPU 0-d tensor per call": ({"loss": torch.tensor(0.5)}, 1),
    }
    for label, (metrics, n) in cases.items():
        rec = Recorder(tmp / f"log{n}{label[2:6]}.h5", max_pending=1 << 22, flush_every=0.5)
        calls = 20000
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for i in range(calls):
                rec.log(metrics, step=i)
            samples.append((time.perf_counter() - t0) / (calls * n) * 1e6)
            rec.flush()
        rec.close()
        out.append(f"| {label} | {statistics.median(samples):.2f} |")
    return out


def writer_throughput(tmp: Path) -> list[str]:
    out = ["| writer | values/s |", "|---|---|"]
    w = RunFileWriter(tmp / "throughput.h5")
    w.start({"name": "bench"}, LayerLayout())
    w.add_tags([f"m{i}" for i in range(100)])
    n_batch, batches = 100_000, 20
    steps = np.arange(n_batch, dtype=np.int64)
    tags = (steps % 100).astype(np.int32)
    vals = np.random.default_rng(0).standard_normal(n_batch)
    wall = np.full(n_batch, time.time())
    t0 = time.perf_counter()
    for _ in range(batches):
        w.append_scalars(steps, tags, vals, wall)
        w.flush(int(steps[-1]))
    dt = time.perf_counter() - t0
    w.close()
    out.append(f"| RunFileWriter.append_scalars, {n_batch} rows per flush | {n_batch * batches / dt / 1e6:.2f} M |")

    rec = Recorder(tmp / "e2e.h5", max_pending=1 << 22, flush_every=0.25)
    metrics = {f"m{i}": 0.5 for i in range(100)}
    t0 = time.perf_counter()
    for i in range(10_000):
        rec.log(metrics, step=i)
    rec.flush()
    dt = time.perf_counter() - t0
    rec.close()
    out.append(f"| Recorder.log (100 floats per call) + flush, 1 M values, end to end | {1e6 / dt / 1e6:.2f} M |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU\n")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("\n".join(overhead_table(args.steps, args.reps, tmp)), "\n")
        print("\n".join(log_cost(tmp)), "\n")
        print("\n".join(writer_throughput(tmp)))


if __name__ == "__main__":
    main()
