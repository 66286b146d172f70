"""GPU check of the recorder: no host-device sync, and its overhead. Needs a CUDA machine.

    timeout 480 python benchmarks/gpu_check.py            # every figure of issue 15: ~400 s on an H200 (--budget 420)
    python benchmarks/gpu_check.py --device cpu --steps 5 --reps 1   # smoke test of this script

Trains a launch-bound MLP (8 x 1024, batch 256) and a GPT-style transformer
(8 layers x 768, seq 256, batch 32, bf16 autocast): bare, with the recorder's default
schedules, with every instrument on every step, and with each scheduled instrument alone on
every step (to price them one by one), and the per-step instruments without the gradient
record's non-finite counts and without the gradient
record at all (what is left: the hooks, the LR and the loss). Modes are interleaved within
each repetition; ratios are medians over repetitions of (mode / bare of the same repetition), with min-max.

Steady state, as in a long run: the untimed warm-up (default 110 steps) covers the recorder's
``dense_start`` (statistics on each of the first 100 steps), and the timed window (default
200 steps) holds each default schedule in its own proportion (stats every 50 steps, histograms
and snapshots every 200). ``--budget`` (seconds, default 420) stops starting repetitions that
would not finish in time, so one run under ``timeout 480`` always prints every table; each
model's table is printed as soon as that model is done.

All timed loops (bare included, to prove the baseline is sync-free) run under
``torch.cuda.set_sync_debug_mode("error")``: any hidden ``.item()``/blocking copy raises and
is reported as a FAIL line; "host-device syncs: 0" is printed only when every loop ran clean.
Recorder warnings (e.g. an instrument that switched itself off) count as failures too.
Goals checked at the end: default instruments <= 1 % on the transformer, <= 3 % on the MLP.
Exit code 0 = no sync, no failure (the goals are reported, not part of the exit code).

``--device cpu`` only smoke-tests this script's logic (tiny models, the recorder forced onto its
GPU code path with ``_device_path=True``); it checks no syncs and its timings mean nothing. The
CPU proof that the GPU code path reads no tensor values is tests/test_sync_free.py.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainspect.recorder import Recorder  # noqa: E402
from trainspect.recorder.recorder import DEFAULT_DENSE_START, RecorderWarning  # noqa: E402


def mlp(device, depth=8, width=1024, batch=256):
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).to(device)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return model, (lambda: (x, y)), torch.nn.functional.cross_entropy, False


class Transformer(torch.nn.Module):
    # Float inputs through a Linear instead of nn.Embedding: the CUDA backward of Embedding
    # reads a segment count on the host (a sync in the bare loop, not in the recorder).
    def __init__(self, vocab=8192, d=512, layers=6, seq=256, d_in=64):
        super().__init__()
        self.emb = torch.nn.Linear(d_in, d)
        self.pos = torch.nn.Parameter(torch.zeros(seq, d))
        layer = torch.nn.TransformerEncoderLayer(d, 8, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.enc(self.emb(x) + self.pos))


def transformer(device, layers=8, d=768, seq=256, batch=32, vocab=8192):
    model = Transformer(vocab=vocab, d=d, layers=layers, seq=seq).to(device)
    x = torch.randn(batch, seq, 64, device=device)
    y = torch.randint(0, vocab, (batch, seq), device=device)

    def loss_fn(out, target):
        return torch.nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]), target.reshape(-1))
    return model, (lambda: (x, y)), loss_fn, True


MODES = {
    "bare": None,
    "recorder, default schedules": {},
    "recorder, all instruments every step": {"stats_every": 1, "hist_every": 1, "snapshot_every": 1},
    "per-step instruments only (grads, LR)": {"stats_every": 0, "hist_every": 0, "snapshot_every": 0},
    "+ weight/activation/input stats every step": {"stats_every": 1, "hist_every": 0, "snapshot_every": 0},
    "+ histograms every step": {"stats_every": 0, "hist_every": 1, "snapshot_every": 0},
    "+ snapshots every step": {"stats_every": 0, "hist_every": 0, "snapshot_every": 1},
    # Pricing the parts of the per-step cost (the data these two leave out is not checked):
    "per-step, non-finite counts off": {"stats_every": 0, "hist_every": 0, "snapshot_every": 0},
    "per-step, no gradient record (hooks, LR, loss)": {"stats_every": 0, "hist_every": 0, "snapshot_every": 0},
}
DEFAULT_MODE = "recorder, default schedules"
GOALS = {"MLP": 1.03, "Transformer": 1.01}   # default instruments vs bare (issue 15)


# (name, builder, sizes) per device; the CPU sizes only make the smoke test quick.
MODELS = {
    "cuda": [("MLP 8x1024, batch 256", mlp, {}),
             ("Transformer 8x768, seq 256, batch 32, bf16", transformer, {})],
    "cpu": [("MLP 2x64, batch 16", mlp, {"depth": 2, "width": 64, "batch": 16}),
            ("Transformer 2x32, seq 16, batch 4", transformer,
             {"layers": 2, "d": 32, "seq": 16, "batch": 4, "vocab": 50})],
}


def _no_nonfinite_counts():
    """The gradient record without its non-finite counts (zeros instead): they cost a few
    passes over every gradient (a concatenation, isnan(x*0), a running sum) beside the norms' one."""
    from trainspect.recorder.device_stats import NonfiniteCounter

    zeros = {}

    def counts(self, tensors):
        key = (tensors[0].device, len(tensors))
        z = zeros.get(key)
        if z is None:
            z = zeros[key] = torch.zeros(len(tensors), device=tensors[0].device)
        return z
    return patch.object(NonfiniteCounter, "__call__", counts)


def _no_gradient_record():
    """Every hook in place, but the gradient record computes nothing: the fixed per-step cost."""
    from trainspect.recorder.records.gradients import Gradients

    return patch.object(Gradients, "compute", lambda self, current=None: None)


PATCHES = {"per-step, non-finite counts off": _no_nonfinite_counts,
           "per-step, no gradient record (hooks, LR, loss)": _no_gradient_record}


def sync_debug(device):
    """Any host-device sync raises (CUDA only; nothing to check on the CPU)."""
    if device.type != "cuda":
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def on():
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return on()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def training(make, sizes, mode_kwargs, path, device):
    """A model, its optimizer and (``mode_kwargs`` not None) a recorder watching them; returns
    the recorder (or None) and one training step (bf16 autocast where the model asks for it)."""
    torch.manual_seed(0)
    model, batch, loss_fn, bf16 = make(device, **sizes)
    bf16 = bf16 and device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rec = None
    if mode_kwargs is not None:
        # On the CPU: force the recorder's GPU code path (see the module docstring).
        rec = Recorder(path, overwrite=True, _device_path=device.type == "cpu", **mode_kwargs)
        rec.watch(model, opt)

    def step():
        x, y = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log({"train/loss": loss})
    return rec, step


def run(make, sizes, mode_kwargs, steps, warmup, path, device):
    rec = None
    with warnings.catch_warnings(record=True) as caught:   # from watch() on
        warnings.simplefilter("always")
        try:
            rec, step = training(make, sizes, mode_kwargs, path, device)
            dt = _timed(step, steps, warmup, device)
        finally:
            if rec is not None:
                rec.close()
    problems = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    return dt, problems


def _timed(step, steps, warmup, device):
    for _ in range(warmup):   # warm-up outside the sync check (allocator, cuBLAS handles, pinned pool)
        step()
    synchronize(device)
    with sync_debug(device):   # bare too: proves the baseline loop is sync-free
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
    synchronize(device)
    return (time.perf_counter() - t0) / steps


def check_file(path, steps_total):
    from trainspect.analysis import open_run

    with open_run(path) as run:
        gn = run.layer_stat("grad_norm")
        loss = run.scalar("train/loss")
        assert len(gn.steps) == steps_total, (len(gn.steps), steps_total)
        assert len(loss.values) == steps_total
        assert np.isfinite(gn.values).all() and np.isfinite(loss.values).all()
        assert run.status().state == "finished"
        return sorted(run.layer_stat_names())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200, help="timed steps (200: one of each default schedule)")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=DEFAULT_DENSE_START + 10,
                    help="untimed steps before the sync check (default: past the recorder's dense start)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds: no repetition is started that would end past this (at least 1 per model)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: quick smoke test of this script with tiny models (no sync check)")
    args = ap.parse_args()
    if args.steps < 1 or args.reps < 1 or args.warmup < 0:
        ap.error("--steps and --reps must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (use --device cpu for a smoke test of the script)")
            return 2
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}\n")
    else:
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, CPU smoke test: recorder forced onto its GPU code path; "
              "no sync check, timings meaningless\n")
    ok = True
    started = time.perf_counter()
    verdicts = []
    rows = ["| model | mode | ms/step (median) | ratio to bare: median (min-max) |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        models = MODELS[device.type]
        for index, (name, make, sizes) in enumerate(models):
            times = {m: [] for m in MODES}
            model_start = time.perf_counter()
            for r in range(args.reps):
                # This model's share of what is left of the budget; at least one repetition.
                share = (args.budget - (model_start - started)) / (len(models) - index)
                per_rep = (time.perf_counter() - model_start) / max(r, 1)
                if r and time.perf_counter() - model_start + per_rep > share:
                    print(f"[{time.perf_counter() - started:.0f} s] {name}: {r} repetitions (budget)", flush=True)
                    break
                for mode, kw in MODES.items():
                    path = Path(d) / f"{make.__name__}-{r}-mode{list(MODES).index(mode)}.h5"
                    try:
                        with PATCHES.get(mode, contextlib.nullcontext)():
                            dt, problems = run(make, sizes, kw, args.steps, args.warmup, path, device)
                    except Exception:  # noqa: BLE001 - report and go on with the other modes
                        ok = False
                        print(f"FAIL {name} / {mode}:\n{traceback.format_exc()}")
                        continue
                    if problems:
                        ok = False
                        print(f"FAIL {name} / {mode}: recorder warnings: {problems}")
                    if kw is not None and r == 0 and mode not in PATCHES:
                        try:
                            stats = check_file(path, args.steps + args.warmup)
                            print(f"ok   {name} / {mode}: file holds {stats}")
                        except Exception:  # noqa: BLE001
                            ok = False
                            print(f"FAIL {name} / {mode}: file check:\n{traceback.format_exc()}")
                    times[mode].append(dt)
            first_row = len(rows)
            for mode in MODES:
                if not times[mode] or not times["bare"] or len(times[mode]) != len(times["bare"]):
                    continue
                ratios = [t / b for t, b in zip(times[mode], times["bare"])]
                rows.append(f"| {name} | {mode} | {1e3 * statistics.median(times[mode]):.2f} | "
                            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")
                if mode == DEFAULT_MODE:
                    goal = GOALS[name.split()[0]]
                    verdicts.append(f"{name}: default instruments x{statistics.median(ratios):.3f}, goal <= x{goal}: "
                                    + ("met" if statistics.median(ratios) <= goal else "NOT met"))
            print(f"[{time.perf_counter() - started:.0f} s] {name} done\n" + "\n".join(rows[:2] + rows[first_row:])
                  + "\n", flush=True)
    print("\n" + "\n".join(rows))
    print("\n" + "\n".join(verdicts))
    if device.type == "cuda":
        print("\nhost-device syncs: " + ("0 (every timed loop ran under set_sync_debug_mode('error'))" if ok
                                         else "FOUND or failures (see FAIL lines)"))
    else:
        print("\nCPU smoke test: " + ("ok" if ok else "FAILED (see FAIL lines)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
