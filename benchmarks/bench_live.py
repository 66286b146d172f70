"""Live tailing figures: log -> visible and flush -> painted latency, the cost of polling idle runs.

    python benchmarks/bench_live.py [--logs 300] [--flushes 120] [--runs 10] [--json out.json]

0. log -> visible, at the Recorder's DEFAULT settings (no flush_every tuning): a training
   process logs with ``Recorder.log()``; a reader in this process sees each value (latency =
   the time it saw the row minus the row's wall time, taken inside log()). Two writers:
   ``sparse`` logs one value at random 20-200 ms intervals; ``train`` trains a small MLP under
   ``watch()`` and logs its loss every step (~1-2 ms a step). Readers: ``stat 1 ms`` (the file
   is stat-polled every millisecond, then ``Run.refresh()``: what a reader can get) and
   ``tail`` (the wait of ``trainspect tail``: a 10 ms stat poll). Reported: p50 / p90 / p99.
1. Latency: a writer process appends one train/loss row and flushes at random intervals
   (50-300 ms, so flushes do not lock to the poll timer) and prints the time each flush
   returned. This process tails the file with the app's RunsModel + LiveTail (and, in a
   second pass, the whole MainWindow, offscreen) and notes when each step became visible
   (runUpdated handled, the series holds the row). Reported: p50 / p99 / max in ms.
2. Idle polling: ``--runs`` writer processes whose heartbeat stays fresh (flush every
   second) but that add no rows. Reported: ms per LiveTail poll, polls per second (the
   adaptive interval), CPU % of one core; and, for reference, a plain RunsModel.poll()
   that refreshes every run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

WRITER = r"""
import sys, time, random
from trainspect.recorder.h5file import LayerLayout, RunFileWriter
path, flushes, lo, hi, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "idle"
w = RunFileWriter(path)
# The digits demo's layout (64-128-64-10 MLP): every per-layer table exists, as in a real run.
sizes = [(128, 64), (64, 128), (10, 64)]
params = [p for i, (o, n) in enumerate(sizes) for p in ((f"{2*i}.weight", str(2*i), (o, n), o*n), (f"{2*i}.bias", str(2*i), (o,), o))]
modules = [(str(i), "Linear" if i % 2 == 0 else "ReLU") for i in range(5)]
w.start({"name": "bench"}, LayerLayout(params, modules, [0, 2, 4], [(32, 32)] * 3), flush_every=hi)
w.add_tags(["train/loss"])
w.append_scalars([0], [0], [1.0], [time.time()])
w.flush(0)
print("READY", flush=True)
rng = random.Random(0)
if idle:                      # alive, nothing new: heartbeat only
    while True:
        time.sleep(hi)
        w.flush()
time.sleep(1.0)               # let the reader open the file
for step in range(1, flushes + 1):
    time.sleep(rng.uniform(lo, hi))
    w.append_scalars([step], [0], [float(step)], [time.time()])
    w.flush(step)
    print(step, repr(time.time()), flush=True)
w.close()
"""


RECORDER = r"""
import sys, time, random
from trainspect.recorder import Recorder
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rec = Recorder(path)                      # default settings
rng = random.Random(0)
if mode == "train":
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec.watch(model, opt)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
rec.log({"v": -1.0}, step=0)
rec.flush()
print("READY", flush=True)
time.sleep(1.0)                           # let the reader open the file
for i in range(1, n + 1):
    if mode == "train":
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        rec.log({"v": loss.item()})
    else:
        time.sleep(rng.uniform(0.02, 0.2))
        rec.log({"v": float(i)}, step=i)
time.sleep(0.3)
rec.close()
"""


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def measure_log_to_reader(mode: str, n: int, poll_s: float) -> dict:
    """Latency from Recorder.log() in another process to a reader here (see the docstring)."""
    from trainspect.analysis import open_run

    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "rec.h5"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path), mode, str(n)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "READY"
    run = open_run(path)
    lat: list[float] = []
    seen, stamp = len(run.scalar("v")), None
    while True:
        alive = proc.poll() is None
        now_stamp = _stamp(path)
        if now_stamp != stamp:
            stamp = now_stamp
            run.refresh()
            s = run.scalar("v")
            if len(s) > seen:
                now = time.time()
                lat.extend(now - s.wall[seen:])
                seen = len(s)
        if not alive:
            break
        time.sleep(poll_s)
    run.close()
    proc.stdout.close()
    tmp.cleanup()
    lat_ms = np.asarray(lat) * 1e3
    return {"values": len(lat), "expected": n, "p50_ms": float(np.percentile(lat_ms, 50)),
            "p90_ms": float(np.percentile(lat_ms, 90)), "p99_ms": float(np.percentile(lat_ms, 99)),
            "max_ms": float(lat_ms.max())}


def start_writer(path, flushes=0, lo=0.05, hi=0.3, idle=False) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(flushes), str(lo), str(hi),
                             "idle" if idle else "write"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "READY"
    return proc


def pct(a, q):
    return float(np.percentile(np.asarray(a) * 1e3, q))


def measure_latency(app, flushes: int, with_window: bool) -> dict:
    from trainspect.app.gui.live import LiveTail
    from trainspect.app.gui.main_window import MainWindow
    from trainspect.app.gui.model import RunsModel
    from trainspect.app.gui.settings import make_settings

    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "live.h5"
    proc = start_writer(path, flushes)
    seen: dict[int, float] = {}
    if with_window:
        window = MainWindow(settings=make_settings(f"{tmp.name}/s.ini"))
        window.resize(1400, 900)
        window.show()
        runs, live = window.runs, window.live
    else:
        runs = RunsModel()
        live = LiveTail(runs)

    def on_update(entry, n):
        """Model only: the new rows, read as the plots read them."""
        with entry.run.locked() as r:
            got = r.scalar_rows(["train/loss"], r.scalar_rows_seen - n).get("train/loss")
        now = time.time()
        for step in (got[1].steps if got is not None else ()):
            seen.setdefault(int(step), now)

    def on_drawn():
        """Window: the steps the plot holds once it painted (it reads new rows in the background)."""
        curve = next((c for (m, _), c in window.scalars.curves.items() if m == "train/loss"), None)
        last = curve.last_step if curve is not None else None
        new = [s for s in list(flushed) if last is not None and s <= last and s not in seen]
        if new:
            app.processEvents()      # the repaint the new data scheduled
            now = time.time()
            for step in new:
                seen[step] = now

    if not with_window:
        runs.runUpdated.connect(on_update)
    runs.open(path)
    flushed: dict[int, float] = {}

    def read_flushes():              # the writer's "step time" lines, off the Qt thread
        for line in proc.stdout:
            step, t = line.split()
            flushed[int(step)] = float(t)

    reader = threading.Thread(target=read_flushes, daemon=True)
    reader.start()
    while proc.poll() is None:
        app.processEvents()
        if with_window:
            on_drawn()
        time.sleep(0.002)
    reader.join(5)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        app.processEvents()
        if with_window:
            on_drawn()
        time.sleep(0.005)
    lat = [seen[s] - flushed[s] for s in flushed if s in seen]
    missing = [s for s in flushed if s not in seen]
    live.stop()
    if with_window:
        window.close()
    else:
        runs.close_all()
    proc.stdout.close()
    tmp.cleanup()
    return {"flushes": len(flushed), "missing": len(missing), "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90),
            "p99_ms": pct(lat, 99), "max_ms": float(np.max(lat) * 1e3)}


def measure_idle(app, n_runs: int, seconds: float = 8.0) -> dict:
    from trainspect.app.gui.live import LiveTail
    from trainspect.app.gui.model import RunsModel

    tmp = tempfile.TemporaryDirectory()
    procs = [start_writer(Path(tmp.name) / f"r{i}.h5", idle=True, hi=1.0) for i in range(n_runs)]
    runs = RunsModel()
    live = LiveTail(runs)
    for i in range(n_runs):
        runs.open(Path(tmp.name) / f"r{i}.h5").run.instruments()   # layer tables in use, as with the heatmap
    times: list[float] = []
    live.polled.connect(lambda new, ms: times.append(ms))
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.005)
    cpu = time.process_time() - cpu0
    elapsed = time.monotonic() - t0
    live.stop()
    # Reference: refresh every run on every poll (what a plain timer on RunsModel.poll() costs).
    t = time.perf_counter()
    for _ in range(50):
        runs.poll()
    full_ms = (time.perf_counter() - t) / 50 * 1e3
    runs.close_all()
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()
    tmp.cleanup()
    return {"runs": n_runs, "polls": len(times), "polls_per_s": len(times) / elapsed,
            "ms_per_idle_poll_p50": float(np.median(times)), "ms_per_idle_poll_p99": float(np.percentile(times, 99)),
            "interval_ms_at_end": live.interval_ms, "cpu_pct_of_one_core_incl_event_loop": 100 * cpu / elapsed,
            "ms_per_full_refresh_poll": full_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=300, help="values logged per log -> visible measurement")
    ap.add_argument("--only-log", action="store_true", help="only the log -> visible figures (no Qt)")
    ap.add_argument("--flushes", type=int, default=120)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    from trainspect.app.commands.tail import STAT_POLL_S

    res = {"log_to_visible_sparse_stat1ms": measure_log_to_reader("sparse", args.logs, 0.001),
           "log_to_visible_sparse_tail": measure_log_to_reader("sparse", args.logs, STAT_POLL_S),
           "log_to_visible_train_stat1ms": measure_log_to_reader("train", 10 * args.logs, 0.001),
           "log_to_visible_train_tail": measure_log_to_reader("train", 10 * args.logs, STAT_POLL_S)}
    if args.only_log:
        return report(res, args.json)
    from trainspect.app.gui.main_window import ensure_app

    app = ensure_app()
    res |= {"latency_model": measure_latency(app, args.flushes, with_window=False),
           "latency_window": measure_latency(app, args.flushes, with_window=True),
           "idle_polling": measure_idle(app, args.runs)}
    return report(res, args.json)


def report(res: dict, json_path) -> int:
    for k, v in res.items():
        print(f"{k}: " + ", ".join(f"{a}={b:.2f}" if isinstance(b, float) else f"{a}={b}" for a, b in v.items()))
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
