"""A/B of two trainspect trees in one run: training-loop overhead (bench_recorder's models) of
the installed trainspect against an older checkout, processes alternated so both see the same
machine load. Each child trains bare then recorded, 3 rounds, and prints the ratios.

    python ab.py ROUNDS MODE OLD_PKG_DIR     # MODE: every (all instruments every step) or default
    # OLD_PKG_DIR holds a `trainspect` link to the older tree (its C extension built in place):
    #   git worktree add /tmp/oldtree 59fb6bf && cd /tmp/oldtree &&
    #   gcc -O3 -fopenmp-simd -shared -fPIC $(python3-config --includes) recorder/_native.c \
    #       -o recorder/_native$(python3-config --extension-suffix) &&
    #   mkdir -p /tmp/oldpkg && ln -sfn /tmp/oldtree /tmp/oldpkg/trainspect
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2]     # benchmarks/


def child(mode: str) -> None:
    import tempfile

    sys.path.insert(0, str(BENCH))
    from bench_recorder import mlp, timed_training, transformer
    kwargs = {"stats_every": 1, "hist_every": 1, "snapshot_every": 1} if mode == "every" else {}
    warmup = 20 if mode == "every" else 110          # past the default dense start (100 steps)
    d = Path(tempfile.mkdtemp())
    out = {}
    for r in range(3):
        for name, make, steps in (("tf", transformer, 100), ("mlp", mlp, 300)):
            b = timed_training(make, None, steps, d / "b.h5", warmup=warmup)
            a = timed_training(make, kwargs, steps, d / f"a{r}{name}.h5", warmup=warmup)
            out.setdefault(name, []).append(a[0] / b[0])
            out.setdefault(name + "_cpu", []).append(a[1] / b[1])
    print(json.dumps(out))


def main() -> None:
    rounds, mode, old = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    res = {"old": {}, "new": {}}
    for i in range(rounds):
        for tag in (("old", "new") if i % 2 == 0 else ("new", "old")):
            env = dict(os.environ)
            if tag == "old":
                env["PYTHONPATH"] = old
            run = subprocess.run([sys.executable, __file__, "--child", mode], env=env,
                                 capture_output=True, text=True, check=True)
            for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items():
                res[tag].setdefault(k, []).extend(v)
    for tag, d in res.items():
        print(tag, {k: f"x{statistics.median(v):.3f} ({min(v):.2f}-{max(v):.2f}) n={len(v)}" for k, v in d.items()})


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
