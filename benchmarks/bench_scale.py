"""Desktop app at scale (issue 15): many runs at once, many metric names in one run.

    python benchmarks/bench_scale.py [--out bench-out/scale] [--runs 50] [--steps 20000] [--names 50000]

Each figure comes from a fresh process (what ``trainspect open DIR`` does), offscreen Qt:

1. ``--runs`` runs of ``--steps`` steps with 4 layers each, opened at once
   (``MainWindow.open_paths``): time to the first paint showing a run (goal <= 3 s), time until
   every run is open and drawn, time until the advisor is idle, peak RSS, and RSS after
   closing them all (memory follows what is shown).
2. One run with ``--names`` metric names: time to first paint (goal <= 2 s), peak RSS.
3. A live run growing while the app tails it: RSS at the start and after many more steps
   (the app keeps only what the plots need), the peak, and RSS once the advisor is idle.

Times are from ``open_paths`` to a painted window; "process" adds Python start-up, imports
and window creation; ``*_cpu_s`` is the CPU time the app used meanwhile (all threads), which a
machine shared with other work does not inflate. The load average is printed with the figures.
Files are written once into --out (gitignored) and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOALS = {"runs_first_paint_s": 3.0, "names_first_paint_s": 2.0}

CHILD_PRELUDE = r"""
import json, os, resource, sys, time
T_PROCESS = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, {repo!r})
from trainspect.app.gui.main_window import MainWindow, ensure_app
from trainspect.app.gui.settings import make_settings

def rss_mb(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

def spin_until(app, condition, timeout_s=600):
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.001)

app = ensure_app()
window = MainWindow(settings=make_settings({settings!r}))
window.resize(1600, 1000)
window.show()
app.processEvents()
out = {{"process_to_window_s": time.perf_counter() - T_PROCESS, "rss_before_open_mb": rss_mb()}}
"""

RUNS_CHILD = r"""
paths = json.loads(sys.argv[1])
cpu = time.process_time()
t = time.perf_counter()
window.open_paths(paths)
out["open_paths_returned_s"] = time.perf_counter() - t
spin_until(app, lambda: bool(window.scalars.curves))
window.grab()                                   # paints every visible widget now
out["first_paint_s"] = time.perf_counter() - t
out["first_paint_cpu_s"] = time.process_time() - cpu   # all threads; what load cannot inflate
out["first_paint_from_process_start_s"] = time.perf_counter() - T_PROCESS
n_metrics = len(window.view.metrics)
spin_until(app, lambda: len(window.runs) == len(paths) and not window.runs.loading()
           and len({k for _, k in window.scalars.curves}) == len(paths))
window.grab()
out["all_drawn_s"] = time.perf_counter() - t
out["curves"] = len(window.scalars.curves)
out["rss_all_open_mb"] = rss_mb()
window.advisor.wait(600)
out["advisor_idle_s"] = time.perf_counter() - t
shot = os.environ.get("BENCH_SCALE_SHOT")
if shot:
    window.grab().save(shot)
window.runs.close_all()
for _ in range(20):
    app.processEvents()
import gc; gc.collect()
out["rss_after_close_mb"] = rss_mb()
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""

NAMES_CHILD = r"""
path = sys.argv[1]
cpu = time.process_time()
t = time.perf_counter()
window.open_paths([path])
spin_until(app, lambda: bool(window.scalars.curves))
window.grab()
out["first_paint_s"] = time.perf_counter() - t
out["first_paint_cpu_s"] = time.process_time() - cpu   # all threads; what load cannot inflate
out["first_paint_from_process_start_s"] = time.perf_counter() - T_PROCESS
out["metric_names"] = len(window.runs.metric_names())
# Filtering the metric list is what a user does next with 50,000 names.
t = time.perf_counter()
window.metrics.filter.setText("metric_4999")
app.processEvents()
out["filter_s"] = time.perf_counter() - t
out["filter_matches"] = len(window.metrics.visible_metrics())
window.advisor.wait(600)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""

LIVE_CHILD = r"""
import subprocess
path, steps = sys.argv[1], int(sys.argv[2])
writer = subprocess.Popen([sys.executable, "-c", {writer!r}, path, str(steps)], cwd={repo!r})
from trainspect.analysis import RunFileError, open_run
deadline = time.perf_counter() + 120
while True:
    try:
        with open_run(path) as r:
            if r.scalar_names():
                break
    except RunFileError:
        pass
    if time.perf_counter() > deadline:
        raise SystemExit("writer never started")
    time.sleep(0.05)
window.open_paths([path])
spin_until(app, lambda: bool(window.scalars.curves))
samples = []
while writer.poll() is None:
    spin_until(app, lambda: True)
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
    e = window.runs.runs()[0]
    c = window.scalars.curves.get(("train/loss", e.key))
    samples.append((c.n_points if c else 0, rss_mb()))
spin_until(app, lambda: (c := window.scalars.curves.get(("train/loss", window.runs.runs()[0].key))) is not None
           and c.n_points >= steps, timeout_s=120)
samples.append((steps, rss_mb()))
out["samples_points_rss_mb"] = samples[:: max(1, len(samples) // 12)] + [samples[-1]]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
window.advisor.wait(600)                     # the advisor's last diagnosis reads whole series
end = time.perf_counter() + 2.0
while time.perf_counter() < end:
    app.processEvents()
    time.sleep(0.01)
out["rss_settled_mb"] = rss_mb()             # what the app holds once nothing is being read
print("RESULT " + json.dumps(out))
"""

# A live writer: `steps` steps of 4 metrics, flushed in blocks, as fast as it can.
LIVE_WRITER = r"""
import sys, time
import numpy as np
from trainspect.recorder.h5file import RunFileWriter
path, steps = sys.argv[1], int(sys.argv[2])
w = RunFileWriter(path)
w.start({"name": "live-scale"}, flush_every=0.1)
names = ["train/loss", "val/loss", "train/acc", "train/lr"]
w.add_tags(names)
block = 20_000
for lo in range(0, steps, block):
    s = np.arange(lo, min(steps, lo + block))
    st = np.repeat(s, 4)
    tg = np.tile(np.arange(4), len(s))
    w.append_scalars(st, tg, np.exp(-st / steps) + 0.01 * np.sin(st), time.time() + st * 1e-4)
    w.flush(int(s[-1]))
    time.sleep(0.05)
w.close()
"""


def make_many_runs(out: Path, n_runs: int, steps: int) -> list[Path]:
    from tests.fixtures_runs import make_run

    d = out / f"runs_{n_runs}x{steps}"
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_runs):
        p = d / f"run{i:03d}.h5"
        if not p.exists():
            make_run(p.with_suffix(".tmp"), n_steps=steps, n_layers=4, seed=i, name=f"run{i:03d}")
            p.with_suffix(".tmp").rename(p)
        paths.append(p)
    return paths


def make_many_names(out: Path, n_names: int, points: int = 4) -> Path:
    import numpy as np

    from trainspect.recorder.h5file import RunFileWriter

    p = out / f"names_{n_names}.h5"
    if p.exists():
        return p
    tmp = p.with_suffix(".tmp")
    w = RunFileWriter(tmp)
    w.start({"name": f"{n_names} metrics"})
    names = ["train/loss", "val/loss"] + [f"group{i // 1000:02d}/metric_{i}" for i in range(n_names - 2)]
    w.add_tags(names)
    steps = np.repeat(np.arange(points), n_names)
    tags = np.tile(np.arange(n_names), points)
    w.append_scalars(steps, tags, np.random.default_rng(0).random(len(steps)), 1e9 + steps.astype(float))
    w.close(last_step=points - 1)
    tmp.rename(p)
    return p


def run_child(body: str, args: list[str], settings: Path, env=None) -> dict:
    code = CHILD_PRELUDE.format(repo=str(REPO), settings=str(settings)) + body
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"child failed (exit {res.returncode}):\n{res.stderr[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench-out" / "scale"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--names", type=int, default=50_000)
    ap.add_argument("--live-steps", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shot", default=None, help="save a PNG of the window with all runs open")
    ap.add_argument("--only", choices=("runs", "names", "live"), default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "settings.ini"
    report: dict = {"loadavg_at_start": os.getloadavg(), "cpus": os.cpu_count()}
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    if args.only in (None, "runs"):
        t = time.perf_counter()
        paths = make_many_runs(out, args.runs, args.steps)
        print(f"# {args.runs} runs ready in {time.perf_counter() - t:.1f} s "
              f"({sum(p.stat().st_size for p in paths) / 1e6:.0f} MB)", flush=True)
        env = dict(os.environ)
        results = []
        for i in range(args.repeats):
            if args.shot and i == 0:
                env["BENCH_SCALE_SHOT"] = args.shot
            else:
                env.pop("BENCH_SCALE_SHOT", None)
            results.append(run_child(RUNS_CHILD, [json.dumps([str(p) for p in paths])], settings, env))
        report["runs"] = _summarise(results)
        _print(f"{args.runs} runs x {args.steps} steps, 4 layers", report["runs"], "first_paint_s",
               GOALS["runs_first_paint_s"])
    if args.only in (None, "names"):
        path = make_many_names(out, args.names)
        results = [run_child(NAMES_CHILD, [str(path)], settings) for _ in range(args.repeats)]
        report["names"] = _summarise(results)
        _print(f"one run with {args.names} metric names", report["names"], "first_paint_s",
               GOALS["names_first_paint_s"])
    if args.only in (None, "live"):
        path = out / "live.h5"
        for p in (path, out / ".live.h5.lock"):
            if p.exists():
                p.unlink()
        body = LIVE_CHILD.format(writer=LIVE_WRITER, repo=str(REPO))
        report["live"] = run_child(body, [str(path), str(args.live_steps)], settings)
        print(f"\nlive run growing to {args.live_steps} steps x 4 metrics: (points, RSS MB) "
              f"{report['live']['samples_points_rss_mb']}; peak RSS {report['live']['peak_rss_mb']:.0f} MB; "
              f"settled {report['live']['rss_settled_mb']:.0f} MB")
    (out / "bench_scale.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out / 'bench_scale.json'}")
    return 0


def _summarise(results: list[dict]) -> dict:
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float))]
    return {k: {"median": sorted(r[k] for r in results)[len(results) // 2],
                "min": min(r[k] for r in results), "max": max(r[k] for r in results)} for k in keys}


def _print(title: str, summary: dict, goal_key: str, goal: float) -> None:
    print(f"\n{title} (median [min-max] of fresh processes):")
    for k, v in summary.items():
        unit = "" if k in ("curves", "metric_names", "filter_matches") else (" MB" if k.endswith("_mb") else " s")
        print(f"  {k:36s} {v['median']:10.3f}{unit} [{v['min']:.3f}-{v['max']:.3f}]")
    ok = summary[goal_key]["median"] <= goal
    print(f"  goal {goal_key} <= {goal} s: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
