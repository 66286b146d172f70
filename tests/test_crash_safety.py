"""Writer and reader in separate processes; kill -9 of a recording process at random moments."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from trainspect.analysis import open_run
from trainspect.recorder import format as fmt

REPO = Path(__file__).resolve().parents[1]

# Trains a small model with the recorder; after each flush() barrier prints how many "v"
# values were logged before it (all of them must be in the file from then on).
CHILD = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from trainspect.recorder import Recorder
    path, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec = Recorder(path, flush_every=0.05, stats_every=2, dense_start=0, hist_every=5, snapshot_every=5,
               transfer_every=3)
    rec.watch(model, opt)
    print("started", flush=True)
    for step in range(steps):
        loss = model(torch.randn(32, 8)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        rec.log({"train/loss": loss, "v": 2.0 * step + 1.0}, step=step)
        if step % 5 == 4:
            rec.flush()
            print("flushed", step + 1, flush=True)
        time.sleep(pause)
    rec.close()
    print("done", flush=True)
""")


def start_child(path, steps=100000, pause=0.002):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(steps), str(pause)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_file(path, min_v_rows: int) -> None:
    """Every row up to the last completed flush is present, and no row is garbage."""
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        names = fmt.decode_names(f[fmt.TAG_NAMES][:])
        tags = f[fmt.SCALAR_TAG][:]
        n = min(len(tags), *(f[k].shape[0] for k in (fmt.SCALAR_STEP, fmt.SCALAR_VALUE, fmt.SCALAR_WALL)))
        tags, steps = tags[:n], f[fmt.SCALAR_STEP][:n]
        values, wall = f[fmt.SCALAR_VALUE][:n], f[fmt.SCALAR_WALL][:n]
        assert ((tags >= 0) & (tags < len(names))).all(), "tag id outside the tag table"
        assert (steps >= 0).all() and (steps < 10**6).all(), "garbage step"
        assert (np.abs(wall - time.time()) < 600).all(), "garbage wall time"
        v = tags == names.index("v")
        assert v.sum() >= min_v_rows, (v.sum(), min_v_rows)
        np.testing.assert_array_equal(steps[v], np.arange(v.sum()))
        np.testing.assert_array_equal(values[v], 2.0 * steps[v] + 1.0)
        # per-layer records: the shortest column is complete and sane
        g = f[fmt.GRADS]
        r = min(g[k].shape[0] for k in g)
        np.testing.assert_array_equal(g["step"][:r], np.arange(r))
        assert np.isfinite(g["norm"][:r]).all() and (g["nonfinite"][:r] == 0).all()
        if min_v_rows >= 5:
            assert r >= min_v_rows - 1   # grads of the steps before the barrier's step
        a = f[fmt.ACTS]
        ra = min(a[k].shape[0] for k in a)
        np.testing.assert_array_equal(a["step"][:ra], np.arange(ra) * 2)
        assert np.isfinite(a["mean"][:ra]).all()


# Starting 20 Python processes that import torch costs ~30 s on 2 cores. A "zygote" imports
# torch and the recorder once and forks one recording child per trial (no torch op runs
# before the fork, so no thread pool is copied). The child reports progress by appending
# "flushed <n>" lines to a log file (each line is one write(), visible to the parent at once).
ZYGOTE = textwrap.dedent("""
    import os, signal, sys
    import h5py, torch, torch.optim, torch._dynamo   # what the first optimizer step imports
    import trainspect.recorder.recorder, trainspect.recorder.instruments
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped automatically
    CHILD_BODY = sys.argv[1]
    for line in sys.stdin:
        path, log = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                out = open(log, "w", buffering=1)
                sys.stdout = out
                sys.argv = ["child", path, "100000", "0.002"]
                exec(compile(CHILD_BODY, "child", "exec"), {"__name__": "__child__"})
            finally:
                os._exit(0)
        print("pid", pid, flush=True)
""")


class Zygote:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, CHILD], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.pids: list[int] = []

    def fork(self, path: Path, log: Path) -> int:
        with self.lock:
            self.proc.stdin.write(f"{path} {log}\n")
            self.proc.stdin.flush()
            pid = int(self.proc.stdout.readline().split()[1])
            self.pids.append(pid)
            return pid

    def close(self):
        for pid in self.pids:   # children a failed trial left running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.stdin.close()
        try:
            self.proc.wait(120)     # it exits at EOF; a loaded machine may take a while to unload torch
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def flushed_counts(log: Path) -> list[int]:
    text = log.read_text() if log.exists() else ""
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("flushed ")]


def one_kill_trial(zygote: Zygote, tmp: Path, seed: int) -> int:
    rng = random.Random(seed)
    path, log = tmp / f"kill{seed}.h5", tmp / f"kill{seed}.log"
    pid = zygote.fork(path, log)
    wanted = rng.randint(1, 8)
    deadline = time.monotonic() + 60
    while len(flushed_counts(log)) < wanted:
        assert alive(pid), f"child died: {log.read_text() if log.exists() else ''}"
        assert time.monotonic() < deadline, "child never flushed"
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.06))   # land anywhere: mid-step, mid-write, mid-flush
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    flushed = flushed_counts(log)   # lines written before the kill are all in the log
    check_file(path, max(flushed))
    return max(flushed)


def test_kill_minus_nine_keeps_every_flushed_row(tmp_path):
    trials = 24
    zygote = Zygote()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda s: one_kill_trial(zygote, tmp_path, s), range(trials)))
    finally:
        zygote.close()
    assert len(results) == trials and min(results) >= 5


def test_reader_in_another_process_sees_rows_grow(tmp_path):
    path = tmp_path / "live.h5"
    proc = start_child(path, steps=400, pause=0.004)
    try:
        assert proc.stdout.readline().strip() == "started"
        run = None
        deadline = time.monotonic() + 60
        while run is None:
            try:
                run = open_run(path)
            except Exception:   # the first flush may not have happened yet
                assert time.monotonic() < deadline
                time.sleep(0.02)
        counts, states = [], set()
        while proc.poll() is None and time.monotonic() < deadline:
            run.refresh()
            if "v" in run.scalar_names():
                counts.append(len(run.scalar("v").values))
            states.add(run.status().state)
            time.sleep(0.05)
        proc.wait(30)
        run.refresh()
        assert run.status().state == "finished"
        assert len(run.scalar("v").values) == 400
        growth = sorted(set(counts))
        assert len(growth) >= 3, counts          # the reader saw the table grow while training ran
        assert counts == sorted(counts)          # never shrinks
        assert "live" in states
        run.close()
    finally:
        if proc.poll() is None:
            proc.kill()
