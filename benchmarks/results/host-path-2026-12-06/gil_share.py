"""Does the writer thread's HDF5 work hold the GIL, and so stall a launch-bound training thread?

    python benchmarks/results/host-path-2026-12-06/gil_share.py [--reps 3]

A pure-Python loop on the main thread counts its iterations for 2 s, alone and beside a second
thread that: spins in Python (holds the GIL but for the switch interval), sleeps in 0.5 ms naps,
resizes+writes+flushes 60 SWMR datasets without pause (what the recorder's writer does at each
flush), or only flushes. On a launch-bound GPU loop the training thread's Python time is the
step time, so what a writer takes from this count it would take from training.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import h5py
f = h5py.File(str(Path(tempfile.mkdtemp()) / "gil.h5"), "w", libver="latest")
ds = [f.create_dataset(f"d{i}", shape=(0,), maxshape=(None,), chunks=(65536,), dtype="f4") for i in range(60)]
f.swmr_mode = True
state = {"stop": False, "n": 0}
def h5_writer():
    n = 0
    while not state["stop"]:
        for d in ds:
            d.resize((n + 100,))
            d[n:n + 100] = 1.0
        n += 100
        f.flush()
def flush_only():
    n = 0
    while not state["stop"]:
        ds[0].resize((n + 1,))
        n += 1
        f.flush()
def py_busy():
    k = 0
    while not state["stop"]:
        k += 1
def sleeper():
    while not state["stop"]:
        time.sleep(0.0005)
def spin(sec):
    t0 = time.perf_counter(); k = 0
    while time.perf_counter() - t0 < sec:
        k += 1
    return k
ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=3)
reps = ap.parse_args().reps
for rep in range(reps):
  for name, fn in (("alone", None), ("python busy loop", py_busy), ("sleeping thread", sleeper), ("h5py writes+flush", h5_writer), ("h5py flush only", flush_only), ("alone again", None)):
    state["stop"] = False
    th = threading.Thread(target=fn) if fn else None
    if th:
        th.start()
    k = spin(2.0)
    state["stop"] = True
    if th:
        th.join()
    print(f"rep {rep}: {name:20s} main-thread loop iterations {k:,}")
