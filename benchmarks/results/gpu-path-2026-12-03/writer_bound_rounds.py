"""Every instrument every step on the transformer: bare, default writer clocks, metrics every 250 ms,
per-layer records every flush_every, and no write until close; medians of interleaved rounds, ratios
to bare within a round.  python writer_bound_rounds.py ROUNDS"""
import pathlib, sys, tempfile, statistics
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
from bench_recorder import transformer, timed_training
import trainspect.recorder.writer_thread as wt
EVERY = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}
d = pathlib.Path(tempfile.mkdtemp())
cfg = {"bare": None, "default": (0.02, 0.25, 40.0), "metrics250": (0.25, 0.25, 40.0), "records_rare": (0.02, 5.0, 1e9), "nowrites": (10, 10, 1e9)}
res = {k: [] for k in cfg}
for r in range(int(sys.argv[1])):
    for k, c in cfg.items():
        if c:
            wt.MIN_FLUSH_GAP, wt.MAX_FLUSH_GAP, wt.RECORD_COST_FACTOR = c
        kw = None if c is None else (dict(EVERY, flush_every=10.0) if k == "nowrites" else EVERY)
        w, t, p = timed_training(transformer, kw, 200, d / f"{k}{r}.h5", warmup=20)
        res[k].append((w * 1e3, t * 1e3, (p - t) * 1e3))
for k, v in res.items():
    print(k, "wall x%.3f thread x%.3f writer-cpu %.3f ms/step" % (
        statistics.median(a[0] / b[0] for a, b in zip(v, res["bare"])),
        statistics.median(a[1] / b[1] for a, b in zip(v, res["bare"])),
        statistics.median(x[2] for x in v)))
