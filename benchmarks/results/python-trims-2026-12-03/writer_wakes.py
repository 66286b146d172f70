"""Writer wakes, drains and notify calls while the transformer trains with every instrument:
    python writer_wakes.py new   (PYTHONPATH=<older tree> python writer_wakes.py old for the other)"""
import pathlib, sys, tempfile, threading, json
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
from bench_recorder import transformer, timed_training
import trainspect.recorder.writer_thread as wt
c = {"wait": 0, "drain": 0, "notify": 0, "wake": 0, "flush": 0}
ev_wait = threading.Event.wait
def wait(self, timeout=None):
    if threading.current_thread().name != "MainThread": c["wait"] += 1
    return ev_wait(self, timeout)
threading.Event.wait = wait
for name in ("_drain", "notify", "wake", "_flush"):
    f = getattr(wt.WriterThread, name)
    def g(self, *a, _f=f, _n=name.strip("_")):
        c[_n] += 1; return _f(self, *a)
    setattr(wt.WriterThread, name, g)
EVERY = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1}
r = timed_training(transformer, EVERY, 300, pathlib.Path(tempfile.mkdtemp()) / "x.h5", warmup=20)
print(sys.argv[1], "ms/step %.2f" % (r[0] * 1e3), json.dumps(c))
