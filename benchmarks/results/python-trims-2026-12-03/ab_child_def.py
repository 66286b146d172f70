import sys, json, tempfile, pathlib
sys.path.insert(0, "/work/main/benchmarks")
from bench_recorder import transformer, mlp, timed_training
import trainspect
EVERY = {}
d = pathlib.Path(tempfile.mkdtemp())
out = {"tf": [], "mlp": [], "tf_cpu": [], "mlp_cpu": [], "file": trainspect.__file__}
for r in range(3):
    for name, make, steps in (("tf", transformer, 100), ("mlp", mlp, 300)):
        b = timed_training(make, None, steps, d / "b.h5", warmup=110)
        a = timed_training(make, EVERY, steps, d / f"a{r}{name}.h5", warmup=110)
        out[name].append(a[0] / b[0]); out[name + "_cpu"].append(a[1] / b[1])
print(json.dumps(out))
