"""trainspect next to other experiment loggers, on the same work, in one run.

    pip install -e ".[bench]"        # TensorBoard, W&B, MLflow (skinny), Aim: whichever installs
    python benchmarks/compare_loggers.py [--steps 1000000] [--rounds 3] [--only trainspect,tensorboard]

Loggers (each skipped with a printed reason when it is not installed or fails to start):
trainspect (``Recorder``), TensorBoard (``torch.utils.tensorboard.SummaryWriter``, its defaults),
W&B (``wandb.init(mode="offline")``), MLflow (file store, ``mlflow.log_metrics``), Aim
(``aim.Run.track``). Figures, each the median over ``--rounds`` interleaved rounds (every
logger once per round, the order rotated) with the min-max spread in brackets:

1. us per scalar: ``log()`` of a dict of 10 floats, 2000 calls (values the logger accepted;
   a background writer's later work is not in it: see 3).
2. Training overhead on a CPU MLP (128-256x3-10, batch 64, 1 thread), ratio to the bare loop of
   the same round: ``loss+lr`` logs the loss (``.item()``, as users do for the others; a 0-d
   tensor for trainspect) and the LR every step; ``grad norms`` adds the gradient norm of every
   parameter tensor every step: by hand (``p.grad.norm().item()``) for the others, ``watch()``
   (default instruments) for trainspect.
3. Write 4 metrics x ``--steps`` steps (one call per step), until the data is on disk
   (``close()`` / ``finish()``): wall and CPU seconds, bytes on disk.
4. Read back the 4 series from disk into arrays: TensorBoard ``EventAccumulator`` (all points
   kept), W&B: the offline ``.wandb`` record log parsed with W&B's protobuf classes, MLflow
   ``MlflowClient.get_metric_history``, Aim ``Run.metrics()``, trainspect ``open_run``.
5. Live latency, another process: a writer process logs one value at random 20-200 ms
   intervals at the logger's default settings; the value is the time of the ``log()`` call,
   so this process (stat-polling the files every millisecond, then reading the new data with
   the logger's own reader) gets the latency of each value. TensorBoard, MLflow, trainspect.

Wall-clock figures on a shared machine are noisy: every ratio is taken within one round.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

METRICS4 = ("train/loss", "train/acc", "lr", "grad_norm")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- adapters
class Logger:
    """One logger behind a common face: open(dir) -> handle; log(h, step, dict); close(h)."""

    name = ""

    def available(self) -> str | None:
        """None if usable, else why not."""
        return None

    def open(self, d: Path):
        raise NotImplementedError

    def log(self, h, step: int, metrics: dict) -> None:
        raise NotImplementedError

    def close(self, h) -> None:
        pass

    def read(self, d: Path) -> dict:
        raise NotImplementedError

    # live latency: code for the writer process, and the files to watch / a reader
    live_writer: str | None = None

    def live_reader(self, d: Path):
        return None


class Trainspect(Logger):
    name = "trainspect"

    def open(self, d):
        from trainspect import Recorder
        return Recorder(d / "run.h5")

    def log(self, h, step, metrics):
        h.log(metrics, step=step)

    def close(self, h):
        h.close()

    def watch(self, h, model, opt):
        h.watch(model, opt)

    def read(self, d):
        from trainspect.analysis import open_run
        with open_run(d / "run.h5") as run:
            return {n: run.scalar(n).values for n in run.scalar_names() if not n.startswith("sys/")}

    live_writer = ("from trainspect import Recorder\n"
                   "rec = Recorder(os.path.join(d, 'run.h5'))\n"
                   "def log(step, v): rec.log({'lat': v}, step=step)\n"
                   "def done(): rec.close()\n")

    def live_reader(self, d):
        from trainspect.analysis import RunFileError, open_run
        state = {}

        def read():
            if "run" not in state:
                try:
                    state["run"] = open_run(d / "run.h5")
                except RunFileError:
                    return np.empty(0)
            run = state["run"]
            run.refresh()
            return run.scalar("lat").values if "lat" in run.scalar_names() else np.empty(0)
        return read


class TensorBoard(Logger):
    name = "tensorboard"

    def available(self):
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"not installed ({exc})"
        return None

    def open(self, d):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(str(d))

    def log(self, h, step, metrics):
        for k, v in metrics.items():
            h.add_scalar(k, v, step)

    def close(self, h):
        h.close()

    def read(self, d):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        acc.Reload()
        return {t: np.array([e.value for e in acc.Scalars(t)]) for t in acc.Tags()["scalars"]}

    live_writer = ("from torch.utils.tensorboard import SummaryWriter\n"
                   "w = SummaryWriter(d)\n"
                   "def log(step, v): w.add_scalar('lat', v, step)\n"
                   "def done(): w.close()\n")

    def live_reader(self, d):
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        state = {"loader": None, "values": []}

        def read():
            if state["loader"] is None:
                files = sorted(Path(d).glob("events.out.tfevents.*"))
                if not files:
                    return np.empty(0)
                state["loader"] = EventFileLoader(str(files[0]))
            for ev in state["loader"].Load():
                for v in ev.summary.value:
                    if v.tag == "lat":
                        val = v.simple_value if v.HasField("simple_value") else \
                            float(np.frombuffer(v.tensor.tensor_content, np.float32)[0]) \
                            if v.tensor.tensor_content else float(v.tensor.float_val[0])
                        state["values"].append(val)
            return np.array(state["values"])
        return read


class WandB(Logger):
    name = "wandb-offline"

    def available(self):
        try:
            import wandb  # noqa: F401
            from wandb.proto import wandb_internal_pb2  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"not installed ({exc})"
        return None

    def open(self, d):
        import wandb
        os.environ["WANDB_SILENT"] = "true"
        with quiet():
            return wandb.init(mode="offline", dir=str(d), project="bench",
                              settings=wandb.Settings(console="off", x_disable_stats=True, silent=True))

    def log(self, h, step, metrics):
        h.log(metrics, step=step)

    def close(self, h):
        with quiet():
            h.finish()

    def read(self, d):
        from wandb.proto import wandb_internal_pb2 as pb
        files = list(Path(d).rglob("*.wandb"))
        out: dict = {}
        for rec_bytes in _wandb_records(files[0]):
            r = pb.Record()
            r.ParseFromString(rec_bytes)
            if r.WhichOneof("record_type") == "history":
                for item in r.history.item:
                    key = item.key or "/".join(item.nested_key)
                    if not key.startswith("_"):
                        out.setdefault(key, []).append(json.loads(item.value_json))
        return {k: np.array(v, dtype=float) for k, v in out.items()}


def _wandb_records(path):
    """The records of a W&B ``.wandb`` file: a 7-byte header, then 32 KiB blocks of chunks
    (crc32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last), LevelDB-log style."""
    data = Path(path).read_bytes()
    pos, block, parts = 7, 32768, []
    while pos + 7 <= len(data):
        left = block - (pos % block)
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == 1:
            yield payload
        elif kind == 2:
            parts = [payload]
        elif kind == 3:
            parts.append(payload)
        elif kind == 4:
            parts.append(payload)
            yield b"".join(parts)
            parts = []


class MLflow(Logger):
    name = "mlflow-file"

    def available(self):
        try:
            import mlflow  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"not installed ({exc})"
        return None

    def open(self, d):
        import mlflow
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"   # MLflow 3 keeps the file store behind a flag
        with quiet():
            mlflow.set_tracking_uri((d / "mlruns").as_uri())
            run = mlflow.start_run()
        return run

    def log(self, h, step, metrics):
        import mlflow
        mlflow.log_metrics(metrics, step=step)

    def close(self, h):
        import mlflow
        mlflow.end_run()

    def read(self, d):
        from mlflow.tracking import MlflowClient
        with quiet():
            client = MlflowClient((d / "mlruns").as_uri())
            exp = [e for e in client.search_experiments() if e.name == "Default"][0]
            run = client.search_runs([exp.experiment_id])[0]
            return {k: np.array([m.value for m in client.get_metric_history(run.info.run_id, k)])
                    for k in run.data.metrics}

    live_writer = ("import mlflow\n"
                   "os.environ['MLFLOW_ALLOW_FILE_STORE'] = 'true'\n"
                   "mlflow.set_tracking_uri('file://' + os.path.join(d, 'mlruns'))\n"
                   "mlflow.start_run()\n"
                   "def log(step, v): mlflow.log_metrics({'lat': v}, step=step)\n"
                   "def done(): mlflow.end_run()\n")

    def live_reader(self, d):
        def read():
            files = list(Path(d).glob("mlruns/*/*/metrics/lat"))
            if not files:
                return np.empty(0)
            lines = files[0].read_text().splitlines()
            return np.array([float(x.split()[1]) for x in lines if x.count(" ") >= 2])
        return read


class Aim(Logger):
    name = "aim"

    def available(self):
        try:
            import aim  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"not installed ({exc})"
        return None

    def open(self, d):
        from aim import Run
        with quiet():
            return Run(repo=str(d), system_tracking_interval=None, log_system_params=False,
                       capture_terminal_logs=False)

    def log(self, h, step, metrics):
        h.track(metrics, step=step)

    def close(self, h):
        with quiet():
            h.close()

    def read(self, d):
        # Measured with aim 3.29: after close(), Repo(d).iter_runs() / get_run(hash) find no
        # run (the run is only readable through its own, still open Run object).
        raise NotImplementedError("aim 3.29: a closed run is not found by Repo(dir).iter_runs()/get_run()")


ALL = [Trainspect(), TensorBoard(), WandB(), MLflow(), Aim()]


# ---------------------------------------------------------------- measurements
def per_scalar_us(lg: Logger, tmp: Path, calls: int = 2000) -> float:
    d = Path(tempfile.mkdtemp(dir=tmp))
    h = lg.open(d)
    metrics = {f"m{i}": 0.5 + i for i in range(10)}
    for i in range(50):   # warm-up: names registered, files created
        lg.log(h, i, metrics)
    t0 = time.perf_counter()
    for i in range(50, 50 + calls):
        lg.log(h, i, metrics)
    dt = time.perf_counter() - t0
    lg.close(h)
    shutil.rmtree(d, ignore_errors=True)
    return dt / (calls * 10) * 1e6


def training(lg: Logger | None, mode: str, steps: int, tmp: Path) -> float:
    import torch
    torch.manual_seed(0)
    dims = [128, 256, 256, 256, 10]
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [(torch.randn(64, 128), torch.randint(0, 10, (64,))) for _ in range(8)]
    named = list(model.named_parameters())
    h = None
    d = Path(tempfile.mkdtemp(dir=tmp))
    if lg is not None:
        h = lg.open(d)
        if mode == "grad norms" and isinstance(lg, Trainspect):
            lg.watch(h, model, opt)

    def step(i):
        x, y = data[i % 8]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if lg is None:
            opt.step()
        elif isinstance(lg, Trainspect):
            if mode == "grad norms":     # watch() records the LR and every gradient norm itself
                opt.step()
                h.log({"train/loss": loss.detach()})
            else:
                h.log({"train/loss": loss.detach(), "lr": opt.param_groups[0]["lr"]}, step=i)
                opt.step()
        else:
            m = {"train/loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
            if mode == "grad norms":
                m.update({f"grad/{n}": p.grad.norm().item() for n, p in named})
            lg.log(h, i, m)
            opt.step()

    for i in range(5):
        step(i)
    t0 = time.perf_counter()
    for i in range(5, 5 + steps):
        step(i)
    dt = (time.perf_counter() - t0) / steps
    if h is not None:
        lg.close(h)
    shutil.rmtree(d, ignore_errors=True)
    return dt


def write_read(lg: Logger, steps: int, tmp: Path) -> dict:
    d = Path(tempfile.mkdtemp(dir=tmp))
    rng = np.random.default_rng(0)
    vals = rng.standard_normal((steps, 4)).tolist()
    h = lg.open(d)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(steps):
        a, b, c, e = vals[i]
        lg.log(h, i, {"train/loss": a, "train/acc": b, "lr": c, "grad_norm": e})
    lg.close(h)
    write_s, write_cpu = time.perf_counter() - t0, time.process_time() - c0
    size = dir_size(d)
    t0 = time.perf_counter()
    try:
        got = lg.read(d)
        read_s = time.perf_counter() - t0
        n_read = sum(len(got.get(k, ())) for k in METRICS4)
    except NotImplementedError as exc:
        print(f"{lg.name}: read-back skipped: {exc}")
        read_s, n_read = None, 4 * steps
    shutil.rmtree(d, ignore_errors=True)
    return {"write_s": write_s, "write_cpu_s": write_cpu, "mb": size / 1e6, "read_s": read_s,
            "read_ok": n_read == 4 * steps}


LIVE_WRITER = r"""
import os, sys, time, random
d, t0, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
{setup}
print("READY", flush=True)
time.sleep(1.0)
rng = random.Random(0)
for i in range(n):
    time.sleep(rng.uniform(0.02, 0.2))
    log(i, time.time() - t0)
time.sleep(0.5)
done()
"""


def live_latency(lg: Logger, n: int, tmp: Path) -> dict | None:
    if lg.live_writer is None:
        return None
    d = Path(tempfile.mkdtemp(dir=tmp))
    t0 = time.time()
    code = LIVE_WRITER.replace("{setup}", lg.live_writer)
    proc = subprocess.Popen([sys.executable, "-c", code, str(d), repr(t0), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "READY"
    read = lg.live_reader(d)
    lat, seen, stamp = [], 0, None
    while True:
        alive = proc.poll() is None
        files = [p for p in d.rglob("*") if p.is_file()]
        now_stamp = tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
        if now_stamp != stamp:
            stamp = now_stamp
            with quiet():
                values = read()
            if len(values) > seen:
                now = time.time() - t0
                lat.extend(now - values[seen:])
                seen = len(values)
        if not alive:
            break
        time.sleep(0.001)
    shutil.rmtree(d, ignore_errors=True)
    ms = np.asarray(lat) * 1e3
    if len(ms) == 0:
        return {"seen": 0}
    return {"seen": len(ms), "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99))}


# ---------------------------------------------------------------- report
def spread(xs, fmt="{:.3g}") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    med = statistics.median(xs)
    if len(xs) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000, help="steps of the 4-metric write/read test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write-rounds", type=int, default=1, help="rounds that include the write/read test")
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--live-values", type=int, default=100)
    ap.add_argument("--only", help="comma-separated logger names")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    loggers = []
    for lg in ALL:
        if args.only and lg.name not in args.only.split(","):
            continue
        why = lg.available()
        if why:
            print(f"skipped {lg.name}: {why}")
        else:
            loggers.append(lg)
    res = {lg.name: {"us": [], "loss+lr": [], "grad norms": [], "write": []} for lg in loggers}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for r in range(args.rounds):
            order = loggers[r % len(loggers):] + loggers[:r % len(loggers)]
            bare = training(None, "bare", args.train_steps, tmp)
            for lg in order:
                try:
                    res[lg.name]["us"].append(per_scalar_us(lg, tmp))
                    for mode in ("loss+lr", "grad norms"):
                        res[lg.name][mode].append(training(lg, mode, args.train_steps, tmp) / bare)
                    if r < args.write_rounds:
                        res[lg.name]["write"].append(write_read(lg, args.steps, tmp))
                except Exception as exc:  # noqa: BLE001 - one logger failing must not end the comparison
                    print(f"{lg.name}: round {r} failed: {type(exc).__name__}: {exc}")
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        for lg in loggers:
            try:
                res[lg.name]["live"] = live_latency(lg, args.live_values, tmp)
            except Exception as exc:  # noqa: BLE001
                print(f"{lg.name}: live latency failed: {type(exc).__name__}: {exc}")
                res[lg.name]["live"] = None
    print(f"\n{args.steps:,} steps x 4 metrics; {args.rounds} rounds; median (min-max)\n")
    print("| logger | µs per scalar | loss+LR overhead | grad-norm overhead | write 4 metrics (s, wall / CPU) "
          "| size (MB) | read back (s) | live p50 / p90 / p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for lg in loggers:
        v = res[lg.name]
        w = v["write"]
        live = v.get("live")
        live_s = "not measured" if not live else \
            ("nothing seen" if not live.get("seen") else f"{live['p50']:.0f} / {live['p90']:.0f} / {live['p99']:.0f}")
        ok = "" if all(x["read_ok"] for x in w) else " (incomplete!)"
        print(f"| {lg.name} | {spread(v['us'])} | ×{spread(v['loss+lr'])} | ×{spread(v['grad norms'])} | "
              f"{spread([x['write_s'] for x in w])} / {spread([x['write_cpu_s'] for x in w])} | "
              f"{spread([x['mb'] for x in w])} | {spread([x['read_s'] for x in w])}{ok} | {live_s} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
