"""The bound of the writer's cost: every instrument every step, with live writes (defaults) and with
no write until close (gaps of 10 s); medians of interleaved rounds."""
import pathlib, sys, tempfile, statistics
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
from bench_recorder import transformer, timed_training
import trainspect.recorder.writer_thread as wt
EVERY = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}
d = pathlib.Path(tempfile.mkdtemp())
res = {"bare": [], "default": [], "no-writes": []}
for r in range(6):
    for k in res:
        wt.MIN_FLUSH_GAP, wt.MAX_FLUSH_GAP = (10.0, 10.0) if k == "no-writes" else (0.02, 0.25)
        kw = None if k == "bare" else (dict(EVERY, flush_every=10.0) if k == "no-writes" else EVERY)
        res[k].append(timed_training(transformer, kw, 150, d / f"{k}{r}.h5", warmup=20))
for k, v in res.items():
    print(k, "wall x%.3f" % statistics.median(a[0] / b[0] for a, b in zip(v, res["bare"])),
          "thread x%.3f" % statistics.median(a[1] / b[1] for a, b in zip(v, res["bare"])))
