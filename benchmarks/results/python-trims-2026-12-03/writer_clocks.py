"""Writer CPU per step at the default clocks, with metrics written every 250 ms, and with per-layer
records written only at close; medians of interleaved rounds."""
import pathlib, sys, tempfile, statistics
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
from bench_recorder import transformer, timed_training
import trainspect.recorder.writer_thread as wt
EVERY = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}
d = pathlib.Path(tempfile.mkdtemp())
cfg = {"default": (0.02, 0.25, 40.0), "metrics250": (0.25, 0.25, 40.0), "records_rare": (0.02, 5.0, 1e9)}
res = {k: [] for k in cfg}
for r in range(4):
    for k, (mn, mx, rf) in cfg.items():
        wt.MIN_FLUSH_GAP, wt.MAX_FLUSH_GAP, wt.RECORD_COST_FACTOR = mn, mx, rf
        w, t, p = timed_training(transformer, EVERY, 200, d / f"{k}{r}.h5", warmup=20)
        res[k].append((w * 1e3, t * 1e3, (p - t) * 1e3))
for k, v in res.items():
    print(k, "wall %.2f thread %.2f writer-cpu %.3f ms/step" % tuple(statistics.median(x[i] for x in v) for i in range(3)))
