"""The app reads each run file through one HDF5 handle, from one thread at a time.

Before: the advisor diagnosed a live run with a second handle of the same file on its own
thread while the GUI thread read the first one; HDF5 failed with "can't insert duplicate key"
(868 of 963 reads in 15 s on a 2-core machine) and the panels went empty.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from tests.test_live import WAIT_MS, wait_readable, wait_until  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A live run with per-layer records every step (what the heatmap and the advisor read), one
# flush per step; it keeps its heartbeat going after the last step until killed.
LAYER_WRITER = r"""
import sys, time
import numpy as np
from tests.fixtures_runs import layer_layout
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter
path, steps, dt = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
layout = layer_layout(4)
P, M = len(layout.params), len(layout.modules)
w = RunFileWriter(path)
w.start({"name": "live-layers"}, layout, flush_every=dt)
w.add_tags(["train/loss", "val/loss"])
rng = np.random.default_rng(0)
for step in range(steps):
    w.append_scalars([step, step], [0, 1], [2.0 / (1 + step), 2.1 / (1 + step)], [time.time()] * 2)
    s = np.array([step])
    w.append_records(fmt.GRADS, s, {"norm": rng.random((1, P)).astype(np.float32),
                                    "nonfinite": np.zeros((1, P), np.int32)})
    w.append_records(fmt.WEIGHTS, s, {k: rng.random((1, P)) for k in ("norm", "update_norm", "update_ratio")})
    w.append_records(fmt.ACTS, s, {k: rng.random((1, M)) for k in
                                   ("mean", "std", "absmax", "frac_nonpos", "dead_frac", "frac_saturated")})
    w.flush(step)
    time.sleep(dt)
while True:
    w.flush()
    time.sleep(dt)
"""


@pytest.fixture
def live_layer_run(tmp_path):
    path = tmp_path / "live-layers.h5"
    proc = subprocess.Popen([sys.executable, "-c", LAYER_WRITER, str(path), "100000", "0.002"], cwd=REPO)
    try:
        wait_readable(path)
        yield path
    finally:
        proc.kill()
        proc.wait(10)


def test_diagnoses_and_panel_reads_of_one_live_file_do_not_break_hdf5(qtbot, live_layer_run):
    from trainspect.app.gui.advisor import AdvisorJobs
    from trainspect.app.gui.model import RunsModel
    from trainspect.app.gui.run_io import ReaderBusy

    runs = RunsModel()
    entry = runs.open(live_layer_run)
    jobs = AdvisorJobs()
    results, errors = [], []
    jobs.finished.connect(lambda key, findings, message: results.append((findings, message)))
    # Diagnoses keep running on worker threads while this (the GUI) thread refreshes and reads
    # the same file the way the live tail and the heatmap do.
    stop = threading.Event()

    def diagnose_again():
        while not stop.is_set():
            if not jobs.busy(entry.key):
                jobs.start(entry.key, entry.run)
            time.sleep(0.001)

    driver = threading.Thread(target=diagnose_again, daemon=True)
    driver.start()
    reads = 0
    try:
        deadline = time.monotonic() + WAIT_MS / 1000
        while len(results) < 20 and time.monotonic() < deadline:
            try:
                entry.run.refresh()
                entry.run.status()
                entry.run.scalar("train/loss")
                entry.run.layer_stat("grad_norm")
                reads += 1
            except ReaderBusy:
                pass                       # the advisor held the file a moment: no harm done
            except Exception as exc:       # anything else is the bug
                errors.append(repr(exc))
            qtbot.wait(1)                  # deliver finished diagnoses
    finally:
        stop.set()
        driver.join(10)
        jobs.wait(60)
    wait_until(lambda: not jobs.busy())
    qtbot.wait(10)
    failed = [m for f, m in results if f is None]
    assert len(results) >= 20 and reads > 0
    assert failed == [] and errors == []
    runs.close_all()
