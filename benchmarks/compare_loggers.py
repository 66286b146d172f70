"""trainspect next to other experiment loggers, on the same work, in one run.

    pip install -e ".[bench]"        # TensorBoard, W&B, MLflow (skinny), Aim: whichever installs
    nice -n -10 python benchmarks/compare_loggers.py --out peers.jsonl [--budget-min 80]
    python benchmarks/compare_loggers.py --table peers.jsonl      # the README table

Loggers (each skipped with a printed reason when it is not installed or fails to start):
trainspect (``Recorder``), TensorBoard (``torch.utils.tensorboard.SummaryWriter``, its defaults),
W&B (``wandb.init(mode="offline")``), MLflow (file store, ``mlflow.log_metrics``), Aim
(``aim.Run.track``).

Every figure is measured in its own child process (a logger's threads, services and global
state cannot leak into the next figure) with a timeout (``--figure-timeout``; a slow logger
cannot eat the whole budget), printed as soon as it is measured and appended to the
JSON-lines file ``--out``, so a run stopped early still gives a partial table. Figures run in
``--rounds`` rounds; in every round each figure is measured for every logger, the logger order
rotated, so slow phases of a shared machine fall on every logger alike. ``--table`` renders
medians with the [min-max] spread over rounds, and ratios to trainspect within the same round.

1. ``us``: microseconds per scalar: ``log()`` of a dict of 10 floats, 2000 calls (values the
   logger accepted; a background writer's later work is not in it: see 3).
2. ``loss+lr`` / ``grad norms``: training overhead on a CPU MLP (128-256x3-10, batch 64, one
   thread): two identical models, one bare and one logged, trained in alternating blocks of
   10 steps in the same process (the ratio is logged / bare over the same blocks; wall time
   and training-thread CPU time). ``loss+lr`` logs the loss (``.item()``, as users do for the
   others; a 0-d tensor for trainspect) and the LR every step; ``grad norms`` adds the
   gradient norm of every parameter tensor every step, by hand (``p.grad.norm().item()``) for
   the others, ``watch()`` (its default instruments) for trainspect. 110 warm-up steps first,
   so trainspect's dense start (every statistic on the first 100 steps) is behind it: the
   figure is the steady state.
3. ``write``: 4 metrics x ``--write-steps`` steps (one call per step) until the data is on
   disk (``close()`` / ``finish()``): wall seconds, this process's CPU seconds (W&B's service
   process is not counted), bytes on disk. ``read``: the 4 series back from disk into arrays
   with the logger's own reader: TensorBoard ``EventAccumulator`` (all points kept), W&B the
   offline ``.wandb`` record log parsed with W&B's protobuf classes, MLflow
   ``MlflowClient.get_metric_history``, Aim ``Repo.iter_runs()`` / ``Run.metrics()``,
   trainspect ``open_run``. ``--write-steps`` is small (4 x 20 k values) so that every round
   stays short; after the rounds, one pass at ``--big-steps`` (4 x 1 M values) for the loggers
   of ``--big-only`` (``--big-timeout`` each). Where that figure is missing, ``--table`` gives
   the small figure scaled per value and says so.
4. ``live``: latency to another process: a writer process logs one value at random 20-200 ms
   intervals at the logger's default settings; the value is the wall time of the ``log()``
   call, so this process (stat-polling the files every millisecond, then reading the new data
   with the logger's own reader) gets the latency of each value. p50 / p90 / p99. The writer
   logs one untimed value and waits 4 s first, so start-up (files created; trainspect waits up
   to 3 s for a ``watch()`` before its file starts) is not in the figure.

Wall-clock figures on a shared machine are noisy: every ratio is taken within one round (or
one process), and the load average is recorded with every figure.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

METRICS4 = ("train/loss", "train/acc", "lr", "grad_norm")
KINDS = ("us", "loss+lr", "grad norms", "write", "live")


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

    # live latency: code for the writer process (defines log(step, v) and done()), and a
    # reader returning every 'lat' value seen so far
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
        return _wandb_history(next(Path(d).rglob("*.wandb")))

    live_writer = ("import wandb\n"
                   "os.environ['WANDB_SILENT'] = 'true'\n"
                   "run = wandb.init(mode='offline', dir=d, project='bench',\n"
                   "                 settings=wandb.Settings(console='off', x_disable_stats=True, silent=True))\n"
                   "def log(step, v): run.log({'lat': v}, step=step)\n"
                   "def done(): run.finish()\n")

    def live_reader(self, d):
        def read():
            files = list(Path(d).rglob("*.wandb"))
            return _wandb_history(files[0]).get("lat", np.empty(0)) if files else np.empty(0)
        return read


def _wandb_history(path) -> dict:
    from wandb.proto import wandb_internal_pb2 as pb
    out: dict = {}
    for rec_bytes in _wandb_records(path):
        r = pb.Record()
        r.ParseFromString(rec_bytes)
        if r.WhichOneof("record_type") == "history":
            for item in r.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    out.setdefault(key, []).append(json.loads(item.value_json))
    return {k: np.array(v, dtype=float) for k, v in out.items()}


def _wandb_records(path):
    """The complete records of a W&B ``.wandb`` file (one being written too): a 7-byte header,
    then 32 KiB blocks of chunks (crc32, length u16, type u8: 1 full, 2 first, 3 middle,
    4 last), LevelDB-log style."""
    data = Path(path).read_bytes()
    pos, block, parts = 7, 32768, []
    while pos + 7 <= len(data):
        left = block - (pos % block)
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):
            return   # a chunk still being written
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
        # close() stops the run's writer and status threads (joined: none is left running when
        # it returns); the folder is removed only after this child process has exited.
        with quiet():
            h.close()

    def read(self, d):
        with quiet():
            return _aim_metrics(_aim_indexed_repo(d))

    live_writer = ("from aim import Run\n"
                   "run = Run(repo=d, system_tracking_interval=None, log_system_params=False,\n"
                   "          capture_terminal_logs=False)\n"
                   "def log(step, v): run.track({'lat': v}, step=step)\n"
                   "def done(): run.close()\n")

    def live_reader(self, d):
        def read():
            if not (Path(d) / ".aim" / "meta" / "chunks").is_dir():
                return np.empty(0)
            return _aim_metrics(_aim_indexed_repo(d)).get("lat", np.empty(0))
        return read


def _aim_indexed_repo(d):
    """The repo with every run indexed, as Aim's UI server does (aim 3.29 finds a run, closed or
    live, in ``Repo.iter_runs()`` only after its index manager has indexed its chunk)."""
    from aim import Repo
    from aim.sdk.index_manager import RepoIndexManager
    repo = Repo(str(d))
    manager = RepoIndexManager.get_index_manager(repo)
    for run_hash in repo._all_run_hashes():
        manager.index(run_hash)
    return repo


def _aim_metrics(repo) -> dict:
    out = {}
    for run in repo.iter_runs():
        for m in run.metrics():
            steps, values = m.values.sparse_numpy()
            out[m.name] = np.asarray(values, dtype=float)[np.argsort(steps)]
    return out


ALL = [Trainspect(), TensorBoard(), WandB(), MLflow(), Aim()]
BY_NAME = {lg.name: lg for lg in ALL}


# ---------------------------------------------------------------- measurements (child process)
def emit(fig: dict) -> None:
    print("FIG " + json.dumps(fig), flush=True)


def fig_us(lg: Logger, tmp: Path, calls: int = 2000) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp))
    h = lg.open(d)
    metrics = {f"m{i}": 0.5 + i for i in range(10)}
    for i in range(50):   # warm-up: names registered, files created
        lg.log(h, i, metrics)
    c0, t0 = time.thread_time(), time.perf_counter()
    for i in range(50, 50 + calls):
        lg.log(h, i, metrics)
    dt, dc = time.perf_counter() - t0, time.thread_time() - c0
    emit({"figure": "us", "us": dt / (calls * 10) * 1e6, "cpu_us": dc / (calls * 10) * 1e6})
    lg.close(h)


def _mlp(seed: int = 0):
    import torch
    torch.manual_seed(seed)
    dims = [128, 256, 256, 256, 10]
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def fig_train(lg: Logger, mode: str, tmp: Path, blocks: int = 20, block: int = 10, warmup: int = 110) -> None:
    import torch
    torch.set_num_threads(1)
    data = [(torch.randn(64, 128), torch.randint(0, 10, (64,))) for _ in range(8)]
    bare_model, bare_opt = _mlp()
    model, opt = _mlp()
    named = list(model.named_parameters())
    d = Path(tempfile.mkdtemp(dir=tmp))
    h = lg.open(d)
    if mode == "grad norms" and isinstance(lg, Trainspect):
        h.watch(model, opt)

    def bare_step(i):
        x, y = data[i % 8]
        loss = torch.nn.functional.cross_entropy(bare_model(x), y)
        bare_opt.zero_grad()
        loss.backward()
        bare_opt.step()

    def logged_step(i):
        x, y = data[i % 8]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if isinstance(lg, Trainspect):
            if mode == "grad norms":     # watch() records the LR and every gradient norm itself
                opt.step()
                h.log({"train/loss": loss.detach()}, step=i)
            else:
                h.log({"train/loss": loss.detach(), "lr": opt.param_groups[0]["lr"]}, step=i)
                opt.step()
        else:
            m = {"train/loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
            if mode == "grad norms":
                m.update({f"grad/{n}": p.grad.norm().item() for n, p in named})
            lg.log(h, i, m)
            opt.step()

    for i in range(warmup):
        bare_step(i)
        logged_step(i)
    times = {"bare": [0.0, 0.0], "logged": [0.0, 0.0]}
    i = warmup
    for b in range(blocks):
        order = (("bare", bare_step), ("logged", logged_step))
        for name, fn in (order if b % 2 == 0 else order[::-1]):
            c0, t0 = time.thread_time(), time.perf_counter()
            for k in range(block):
                fn(i + k)
            times[name][0] += time.perf_counter() - t0
            times[name][1] += time.thread_time() - c0
        i += block
    bare_w, bare_c = times["bare"]
    emit({"figure": mode, "wall": times["logged"][0] / bare_w, "cpu": times["logged"][1] / bare_c,
          "bare_ms": bare_w / (blocks * block) * 1e3, "steps": blocks * block})
    lg.close(h)


def fig_write(lg: Logger, steps: int, tmp: Path) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp))
    rng = np.random.default_rng(0)
    vals = rng.standard_normal((steps, 4)).tolist()
    h = lg.open(d)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(steps):
        a, b, c, e = vals[i]
        lg.log(h, i, {"train/loss": a, "train/acc": b, "lr": c, "grad_norm": e})
    lg.close(h)
    emit({"figure": "write", "steps": steps, "wall_s": time.perf_counter() - t0,
          "cpu_s": time.process_time() - c0, "mb": dir_size(d) / 1e6})
    c0, t0 = time.process_time(), time.perf_counter()
    got = lg.read(d)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_read = sum(len(got.get(k, ())) for k in METRICS4)
    emit({"figure": "read", "steps": steps, "wall_s": wall, "cpu_s": cpu, "complete": n_read == 4 * steps,
          "values_read": n_read})


LIVE_WRITER = r"""
import os, sys, time, random
d, t0, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
{setup}
print("READY", flush=True)
log(0, -1.0)       # start-up, not timed: files created (trainspect waits up to 3 s for a watch())
time.sleep(4.0)
rng = random.Random(0)
for i in range(1, n + 1):
    time.sleep(rng.uniform(0.02, 0.2))
    log(i, time.time() - t0)   # seconds since t0: exact in TensorBoard's float32 too
time.sleep(0.5)
done()
"""


def fig_live(lg: Logger, n: int, tmp: Path) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp))
    code = LIVE_WRITER.replace("{setup}", lg.live_writer)
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-c", code, str(d), repr(t0), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    if proc.stdout.readline().strip() != "READY":
        raise RuntimeError(f"the {lg.name} writer process did not start (exit {proc.wait()})")
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
                lat.extend(now - v for v in values[seen:] if v >= 0)
                seen = len(values)
        if not alive:
            break
        time.sleep(0.001)
    ms = np.asarray(lat) * 1e3
    fig = {"figure": "live", "sent": n, "seen": len(ms)}
    if len(ms):
        fig.update({f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)})
    emit(fig)


def child(spec: dict) -> int:
    warnings.simplefilter("ignore")
    lg = BY_NAME[spec["logger"]]
    tmp = Path(spec["tmp"])
    kind = spec["kind"]
    if kind == "us":
        fig_us(lg, tmp)
    elif kind in ("loss+lr", "grad norms"):
        fig_train(lg, kind, tmp)
    elif kind == "write":
        fig_write(lg, spec["steps"], tmp)
    elif kind == "live":
        fig_live(lg, spec["live_values"], tmp)
    return 0


# ---------------------------------------------------------------- driver (parent process)
def run_figure(spec: dict, timeout: float, out: Path, meta: dict) -> None:
    """One child process for one figure; every FIG line it prints is recorded at once."""
    base = {"logger": spec["logger"], "kind": spec["kind"], **meta}
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    err: list = []
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    try:
        _collect(proc, lines, err, timeout, out, base, spec)
    finally:   # also when this driver is stopped: no child (or logger service) left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _collect(proc, lines, err, timeout, out, base, spec) -> None:
    deadline = time.monotonic() + timeout
    got = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            record(out, {**base, "figure": _pending(spec["kind"], got), "timeout_s": round(timeout),
                         **({"steps": spec["steps"]} if "steps" in spec else {})})
            return
        if line is None:
            break
        if line.startswith("FIG "):
            fig = {**base, **json.loads(line[4:]), "load1": round(os.getloadavg()[0], 2)}
            got.append(fig["figure"])
            record(out, fig)
    rc = proc.wait()
    if rc != 0:
        tail = "".join(err).strip().splitlines()[-1:] or [f"exit {rc}"]
        record(out, {**base, "figure": _pending(spec["kind"], got), "error": tail[0][:300],
                     **({"steps": spec["steps"]} if "steps" in spec else {})})


def _pending(kind: str, got: list) -> str:
    return "read" if kind == "write" and "write" in got else kind


def record(out: Path, fig: dict) -> None:
    fig = {"utc": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S"), **fig}
    with open(out, "a") as f:
        f.write(json.dumps(fig) + "\n")
    print(_describe(fig), flush=True)


def _describe(f: dict) -> str:
    head = f"[{f['utc']} r{f.get('round')} load {f.get('load1', '-')}] {f['logger']:<14} {f['figure']:<10}"
    if "timeout_s" in f:
        return f"{head} TIMEOUT after {f['timeout_s']} s" + (f" (steps {f['steps']})" if "steps" in f else "")
    if "error" in f:
        return f"{head} FAILED: {f['error']}"
    if f["figure"] == "us":
        return f"{head} {f['us']:.2f} us per scalar (thread CPU {f['cpu_us']:.2f})"
    if f["figure"] in ("loss+lr", "grad norms"):
        return f"{head} x{f['wall']:.3f} wall, x{f['cpu']:.3f} CPU of bare ({f['bare_ms']:.2f} ms/step)"
    if f["figure"] == "write":
        return f"{head} {f['steps']:,} steps: {f['wall_s']:.2f} s wall, {f['cpu_s']:.2f} s CPU, {f['mb']:.1f} MB"
    if f["figure"] == "read":
        return f"{head} {f['steps']:,} steps: {f['wall_s']:.2f} s wall, {f['cpu_s']:.2f} s CPU" + \
            ("" if f["complete"] else f" INCOMPLETE ({f['values_read']} values)")
    if f["figure"] == "live":
        if not f["seen"]:
            return f"{head} nothing seen of {f['sent']}"
        return f"{head} p50 {f['p50']:.1f} / p90 {f['p90']:.1f} / p99 {f['p99']:.1f} ms ({f['seen']}/{f['sent']})"
    return f"{head} {f}"


def drive(args) -> int:
    loggers = []
    for lg in ALL:
        if args.only and lg.name not in args.only.split(","):
            continue
        why = lg.available()
        if why:
            print(f"skipped {lg.name}: {why}")
        else:
            loggers.append(lg)
    out = Path(args.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the clean-up of run_figure
    start = time.monotonic()
    budget = args.budget_min * 60
    versions = _versions()
    header = {"logger": "-", "figure": "machine", "cpus": os.cpu_count(), "load": list(os.getloadavg()),
              "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
              "date": datetime.date.today().isoformat(), "argv": sys.argv[1:],
              "trainspect_at": str(Path(__import__("trainspect").__file__).parent)}
    record(out, header)
    plan = []
    for r in range(args.rounds):
        order = loggers[r % len(loggers):] + loggers[:r % len(loggers)]
        for kind in args.kinds.split(","):
            for lg in order:
                if kind == "live" and lg.live_writer is None:
                    continue
                plan.append((r, kind, lg, args.write_steps))
    if args.big_steps:
        big_only = args.big_only.split(",") if args.big_only else None
        plan += [("big", "write", lg, args.big_steps) for lg in loggers if big_only is None or lg.name in big_only]
    with tempfile.TemporaryDirectory() as tmp:
        for r, kind, lg, steps in plan:
            left = budget - (time.monotonic() - start)
            if left < 20:
                print(f"budget spent: {lg.name} {kind} round {r} and later figures not measured", flush=True)
                break
            spec = {"logger": lg.name, "kind": kind, "tmp": tmp, "live_values": args.live_values}
            if kind == "write":
                spec["steps"] = steps
            limit = args.big_timeout if r == "big" else args.figure_timeout
            run_figure(spec, min(limit, left), out, {"round": r})
            for p in Path(tmp).iterdir():   # what a killed child left
                shutil.rmtree(p, ignore_errors=True)
    record(out, {**header, "figure": "machine-end", "load": list(os.getloadavg())})
    print(f"\n{render_table(out)}")
    return 0


def _versions() -> dict:
    from importlib import metadata
    got = {}
    for dist in ("trainspect", "torch", "tensorboard", "wandb", "mlflow", "mlflow-skinny", "aim", "h5py"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            got[dist] = metadata.version(dist)
    return got


# ---------------------------------------------------------------- table
def _spread(xs, fmt) -> str:
    if not xs:
        return "–"
    med = statistics.median(xs)
    if fmt(min(xs)) == fmt(max(xs)):
        return fmt(med)
    return f"{fmt(med)} [{fmt(min(xs))}–{fmt(max(xs))}]"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x >= 1 else f"{x:.2g}"


def render_table(path: Path) -> str:
    figs = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    machine = [f for f in figs if f["figure"] == "machine"]
    figs = [f for f in figs if f["logger"] != "-"]
    names = [lg.name for lg in ALL if any(f["logger"] == lg.name for f in figs)]
    ok = [f for f in figs if "timeout_s" not in f and "error" not in f]

    def get(name, figure, steps=None, rounds="small"):
        return [f for f in ok if f["logger"] == name and f["figure"] == figure
                and (steps is None or f.get("steps") == steps)
                and (rounds == "any" or (f["round"] == "big") == (rounds == "big"))]

    def vs_ref(name, figure, field, steps=None, rounds="small"):
        """Ratios to trainspect's figure of the same round."""
        ref = {f["round"]: f[field] for f in get("trainspect", figure, steps, rounds)}
        return [f[field] / ref[f["round"]] for f in get(name, figure, steps, rounds) if f["round"] in ref]

    def problems(name, figure, steps=None):
        bad = [f for f in figs if f["logger"] == name and f["figure"] == figure
               and ("timeout_s" in f or "error" in f) and (steps is None or f.get("steps") == steps)]
        return bad

    small = sorted({f["steps"] for f in ok if f["figure"] == "write" and f["round"] != "big"})
    big = sorted({f.get("steps") for f in figs if f["figure"] == "write" and f["round"] == "big"} - {None})
    small_n = small[0] if small else None
    big_n = big[0] if big else None
    notes = []
    rows = []
    scaled = False
    for name in names:
        us = _spread([f["us"] for f in get(name, "us")], _num)
        if get(name, "us"):   # the training thread's CPU: what other work on the machine disturbs least
            us += "; CPU " + _spread([f["cpu_us"] for f in get(name, "us")], _num)
        if name != "trainspect" and vs_ref(name, "us", "us"):
            us += f" (×{_spread(vs_ref(name, 'us', 'us'), _num)})"
        cells = [name, us]
        for mode in ("loss+lr", "grad norms"):
            got = get(name, mode)
            ratio = lambda x: f"×{x:.2f}"  # noqa: E731
            cells.append(_spread([f["wall"] for f in got], ratio) + " (CPU " + _spread([f["cpu"] for f in got], ratio)
                         + ")" if got else "–")
        # write / read at the big size: measured if it finished, else the small size scaled per value
        for figure in ("write", "read"):
            measured = get(name, figure, big_n, "big") if big_n else []
            if measured:
                cell = _spread([f["wall_s"] for f in measured], _num) + " s; CPU " + \
                    _spread([f["cpu_s"] for f in measured], _num) + " s"
                if name != "trainspect" and vs_ref(name, figure, "wall_s", big_n, "big"):
                    cell += f" (×{_spread(vs_ref(name, figure, 'wall_s', big_n, 'big'), _num)})"
                if figure == "read" and not all(f["complete"] for f in measured):
                    cell += " incomplete!"
            elif small_n and get(name, figure, small_n):
                scale = (big_n or small_n) / small_n
                cell = _spread([f["wall_s"] * scale for f in get(name, figure, small_n)], _num) + " s; CPU " + \
                    _spread([f["cpu_s"] * scale for f in get(name, figure, small_n)], _num) + " s"
                if scale != 1:
                    cell = "≈" + cell.replace("; CPU ", "†; CPU ≈") + "†"
                    scaled = True
                if name != "trainspect" and vs_ref(name, figure, "wall_s", small_n):
                    cell += f" (×{_spread(vs_ref(name, figure, 'wall_s', small_n), _num)})"
                if big_n and problems(name, figure, big_n):
                    p = problems(name, figure, big_n)[0]
                    why = f"timed out after {p['timeout_s']} s" if "timeout_s" in p else f"failed: {p['error']}"
                    if figure == "read" and "timeout_s" in p:
                        why += " (the limit is for write and read together)"
                    notes.append(f"{name} {figure} at 4 × {big_n:,}: {why}")
            else:
                p = problems(name, figure)
                cell = ("timed out" if "timeout_s" in p[0] else "failed") if p else "–"
                if p and "error" in p[0]:
                    notes.append(f"{name} {figure}: {p[0]['error']}")
            if figure == "write":
                big_sizes = get(name, "write", big_n, "big") if big_n else []
                small_sizes = get(name, "write", small_n) if small_n else []
                if big_sizes:
                    mb = _spread([f["mb"] for f in big_sizes], _num) + " MB"
                elif small_sizes and big_n and big_n != small_n:
                    mb = "≈" + _spread([f["mb"] * big_n / small_n for f in small_sizes], _num) + " MB†"
                    scaled = True
                else:
                    mb = _spread([f["mb"] for f in small_sizes], _num) + " MB" if small_sizes else "–"
                cells += [cell, mb]
            else:
                cells.append(cell)
        live = get(name, "live")
        seen = [f for f in live if f["seen"]]
        if seen:
            cells.append(_spread([f["p50"] for f in seen], _num) + " / " + _spread([f["p99"] for f in seen], _num))
            if any(f["seen"] < f["sent"] for f in live):
                cells[-1] += f" ({sum(f['seen'] for f in live)} of {sum(f['sent'] for f in live)} values seen)"
        elif live:
            cells.append("nothing seen until the writer exited")
        else:
            p = problems(name, "live")
            cells.append(("timed out" if "timeout_s" in p[0] else "failed") if p else "–")
            if p and "error" in p[0]:
                notes.append(f"{name} live: {p[0]['error']}")
        rows.append("| " + " | ".join(cells) + " |")
    rounds = sorted({f["round"] for f in ok if f["round"] != "big"})
    size = f"4 × {big_n or small_n or 0:,} values"
    lines = [
        f"| logger | µs per scalar: wall; training-thread CPU | loss + LR, × bare | per-layer grad norms, × bare "
        f"| write {size}: wall; process CPU | size on disk | read back: wall; process CPU | live p50 / p99 (ms) |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
        f"Median [min–max] over {len(rounds)} interleaved rounds; (×n) is the ratio of wall time to "
        "trainspect's in the same round.",
    ]
    if scaled:
        lines.append(f"† measured at 4 × {small_n:,} values in every round and scaled ×{big_n // small_n} per value "
                     f"(the 4 × {big_n:,} pass was not run for this logger, or did not finish within its "
                     f"timeout); its (×n) is the ratio at 4 × {small_n:,}.")
    lines += [f"- {n}" for n in notes]
    if machine:
        m = machine[0]
        lines.append(f"\nMachine: {m['cpus']} CPUs, load average at start {m['load'][0]:.1f}; Python {m['python']}; "
                     + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['date']}.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="compare_loggers.jsonl", help="JSON-lines file the figures are appended to")
    ap.add_argument("--table", metavar="JSONL", help="only render the markdown table from a JSON-lines file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"figures per round, of {','.join(KINDS)}")
    ap.add_argument("--write-steps", type=int, default=20_000, help="steps of the 4-metric write/read in every round")
    ap.add_argument("--big-steps", type=int, default=1_000_000,
                    help="steps of the one write/read pass after the rounds (0: none)")
    ap.add_argument("--big-only", default="trainspect,tensorboard,wandb-offline",
                    help="loggers of the --big-steps pass ('': all); MLflow's file store and Aim take "
                         "about 40 minutes each for 4 x 1 M values on 2 loaded cores")
    ap.add_argument("--big-timeout", type=float, default=900, help="seconds one --big-steps figure may take")
    ap.add_argument("--live-values", type=int, default=100)
    ap.add_argument("--figure-timeout", type=float, default=600, help="seconds one figure of one logger may take")
    ap.add_argument("--budget-min", type=float, default=90, help="minutes for the whole run")
    ap.add_argument("--only", help="comma-separated logger names")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if args.table:
        print(render_table(Path(args.table)))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
