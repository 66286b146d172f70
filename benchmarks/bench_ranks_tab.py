"""The app's Ranks tab on a live 2-rank run: what one refresh reads, its CPU time and the reader's peak memory,
for two trainspect checkouts (old vs new), interleaved.

    nice -n -10 python benchmarks/bench_ranks_tab.py --old /path/to/old-path --new /path/to/new-path \\
        [--steps 200000,2000000] [--live 5] [--per 1000] [--reps 3] [--json out.json]

(``--old``/``--new``: a folder whose ``trainspect`` is that checkout, as the worktrees' -path dirs. The recorder's
own overhead in DDP jobs is benchmarks/bench_ranks.py.)

Per measurement, two fresh processes: a writer (RunFileWriter, the new checkout) writes both rank files
(``exp.h5``, ``exp.rank1.h5``: train/loss, sys/step_time, sys/data_wait, sys/grad_norm every step) up to
``--steps`` and keeps them open; the reader (the checkout measured) opens rank 0 as the app does
(``GuardedRun(open_run(keep_points=False))``), and does what the Ranks tab does on each refresh: the run refreshed,
``ranks_panel.read_ranks`` (rank files opened on the first), and the heatmaps pooled to 1800 columns (old: the GUI's
``pool_columns`` of the read matrices; new: pooled in the read). The first refresh is the tab's first look; then
``--live`` refreshes, each after the writer appended ``--per`` steps to both ranks (a live run between two polls).

Figures: rows of the scalar tables read per refresh (every ``scalar_rows`` row, and every row a full-series read
scans: ``Run._read_once``), with the share read for the per-rank summary lines (``summary_html``, analysis.ranks'
summaries); process CPU ms per refresh (total and without the summary lines); peak RSS of the reader process
(``ru_maxrss``) after opening and at the end. Rounds alternate which checkout goes first; medians [min-max].
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

WRITER = r"""
import sys
import numpy as np
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter
path, steps = sys.argv[1], int(sys.argv[2])
NAMES = ["train/loss", "sys/step_time", "sys/data_wait", "sys/grad_norm"]
writers = []
for rank in range(2):
    w = RunFileWriter(fmt.rank_path(path, rank))
    w.start({"name": "exp", fmt.META_DISTRIBUTED: {"rank": rank, "world_size": 2, "run_id": "bench"}}, flush_every=3600)
    w.add_tags(NAMES)
    writers.append(w)

def write(lo, hi):
    for rank, w in enumerate(writers):
        for a in range(lo, hi, 250_000):
            s = np.arange(a, min(hi, a + 250_000))
            rng = np.random.default_rng(a + rank)
            v = np.column_stack([2.0 * np.exp(-s / 1e6) + 0.05 * rank, 0.1 + 0.01 * rng.random(len(s)),
                                 0.01 + 0.01 * rank * rng.random(len(s)), 1.0 + rng.random(len(s))])
            k = len(NAMES)
            w.append_scalars(np.repeat(s, k), np.tile(np.arange(k), len(s)), v.ravel(), 1e9 + np.repeat(s, k) * 1e-3)
        w.flush(hi - 1)

write(0, steps)
print("ready", flush=True)
at = steps
for line in sys.stdin:
    n = int(line)
    write(at, at + n)
    at += n
    print("ok", flush=True)
for w in writers:
    w.close()
"""

READER = r"""
import json, os, resource, subprocess, sys, threading, time, types
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
writer_path, path, steps, live, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
writer = subprocess.Popen([sys.executable, "-c", os.environ["BENCH_WRITER"], path, str(steps)], text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=writer_path))
assert writer.stdout.readline().strip() == "ready"
from trainspect.analysis.run import Run, open_run
from trainspect.app import rank_view
from trainspect.app.gui.run_io import GuardedRun
from trainspect.app.gui.widgets import ranks_panel
COLS = 1800
new = hasattr(rank_view, "heats")

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

where, rows = threading.local(), {"all": 0, "summary": 0}
real_rows, real_once, real_summary = Run.scalar_rows, Run._read_once, ranks_panel.summary_html

def count(n):
    rows["all"] += n
    if getattr(where, "summary", False):
        rows["summary"] += n

def scalar_rows(self, names, start, stop=None, latest=False):
    count(max(0, (self.scalar_rows_seen if stop is None else min(stop, self.scalar_rows_seen)) - start))
    return real_rows(self, names, start, stop, latest)

def read_once(self, tag):
    count(self.scalar_rows_seen)
    return real_once(self, tag)

summary_cpu = [0.0]
def summary_html(ranked):
    where.summary = True
    t0 = time.process_time()
    try:
        return real_summary(ranked)
    finally:
        summary_cpu[0] += time.process_time() - t0
        where.summary = False

Run.scalar_rows, Run._read_once, ranks_panel.summary_html = scalar_rows, read_once, summary_html
entry = types.SimpleNamespace(run=GuardedRun(open_run(path, keep_points=False)))
opened = rss()
choice = [None, None]

def refresh():
    rows.update(all=0, summary=0)
    summary_cpu[0] = 0.0
    t0 = time.process_time()
    entry.run.refresh()
    if new:
        got = ranks_panel.read_ranks(entry, choice[0], choice[1], {}, COLS)
    else:
        got = ranks_panel.read_ranks(entry, choice[0], choice[1], {})
        for name in (got.timing, got.metric):
            rank_view.pool_columns(got.matrices[name], COLS)
    cpu = time.process_time() - t0
    choice[:] = [got.timing, got.metric]
    return {"cpu_ms": cpu * 1e3, "summary_ms": summary_cpu[0] * 1e3, "rows": rows["all"],
            "summary_rows": rows["summary"]}

first = refresh()
lives = []
for _ in range(live):
    writer.stdin.write(f"{per}\n")
    writer.stdin.flush()
    assert writer.stdout.readline().strip() == "ok"
    lives.append(refresh())
writer.stdin.close()
writer.wait(600)
print(json.dumps({"first": first, "live": lives, "rss_opened_mb": opened, "rss_peak_mb": rss(),
                  "timing": choice[0], "metric": choice[1]}))
"""


def measure(path_dir: str, writer_dir: str, steps: int, live: int, per: int, work: Path) -> dict:
    folder = Path(tempfile.mkdtemp(dir=work))
    env = dict(os.environ, PYTHONPATH=path_dir, BENCH_WRITER=WRITER, OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    try:
        out = subprocess.run([sys.executable, "-c", READER, writer_dir, str(folder / "exp.h5"), str(steps), str(live),
                              str(per)], env=env, capture_output=True, text=True, timeout=3600, check=True)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        for f in folder.glob("*"):
            f.unlink()
        folder.rmdir()
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(values, fmt="{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="folder whose trainspect is the old checkout")
    ap.add_argument("--new", required=True, help="folder whose trainspect is the new checkout")
    ap.add_argument("--steps", default="200000,2000000")
    ap.add_argument("--live", type=int, default=5, help="live refreshes after the first look")
    ap.add_argument("--per", type=int, default=1000, help="steps each rank adds between two refreshes")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainspect-bench-ranks-tab-"))
    sizes = [int(n) for n in args.steps.split(",")]
    got = {(n, v): [] for n in sizes for v in ("old", "new")}
    for rep in range(args.reps):
        for n in sizes:
            order = ("old", "new") if rep % 2 == 0 else ("new", "old")
            for v in order:
                r = measure(getattr(args, v), args.new, n, args.live, args.per, work)
                got[(n, v)].append(r)
                live = statistics.median(x["cpu_ms"] for x in r["live"])
                print(f"round {rep}: {n} steps, {v}: first {r['first']['cpu_ms']:.0f} ms / {r['first']['rows']} rows, "
                      f"live median {live:.1f} ms / {r['live'][-1]['rows']} rows, peak RSS {r['rss_peak_mb']:.0f} MB",
                      flush=True)
    print()
    print("| steps | checkout | first look: CPU ms (w/o summary) | rows read (summary's) | live refresh: CPU ms "
          "(w/o summary) | rows read (summary's) | peak RSS MB (after open) |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for v in ("old", "new"):
            rs = got[(n, v)]
            live = [statistics.median(x["cpu_ms"] for x in r["live"]) for r in rs]
            live_wo = [statistics.median(x["cpu_ms"] - x["summary_ms"] for x in r["live"]) for r in rs]
            first = [r["first"]["cpu_ms"] for r in rs]
            first_wo = [r["first"]["cpu_ms"] - r["first"]["summary_ms"] for r in rs]
            last = rs[-1]
            print(f"| {n:,} | {v} | {spread(first, '{:.0f}')} ({spread(first_wo, '{:.0f}')}) "
                  f"| {last['first']['rows']:,} ({last['first']['summary_rows']:,}) "
                  f"| {spread(live)} ({spread(live_wo)}) "
                  f"| {statistics.median(x['rows'] for x in last['live']):,.0f} "
                  f"({statistics.median(x['summary_rows'] for x in last['live']):,.0f}) "
                  f"| {spread([r['rss_peak_mb'] for r in rs], '{:.0f}')} "
                  f"({spread([r['rss_opened_mb'] for r in rs], '{:.0f}')}) |")
    print(f"(2 ranks, 4 metrics a step; live: {args.per} steps per rank between refreshes, median of {args.live}; "
          f"median [min-max] over {args.reps} rounds; CPU: the reader process's)")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{n} {v}": got[(n, v)] for n, v in got}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
