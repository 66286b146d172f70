"""Live tailing: a writer in another process, the app's models and window in this one."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gui_helpers import open_runs, recorded

pytest.importorskip("PySide6")

REPO = Path(__file__).resolve().parents[1]

# A writer process: `steps` steps of train/loss (one flush per step, every `dt` s), val/loss
# from step `val_from`; then "close" (finished) or "idle" (heartbeat only, until killed).
# It prints READY after the last step's flush.
WRITER = r"""
import sys, time
import numpy as np
from trainspect.recorder.h5file import RunFileWriter
path, steps, val_from, dt, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
w = RunFileWriter(path)
w.start({"name": "live-test"}, flush_every=dt)
w.add_tags(["train/loss"])
for step in range(steps):
    if step == val_from:
        w.add_tags(["val/loss"])
    w.append_scalars([step], [0], [2.0 / (1 + step)], [time.time()])
    if step >= val_from:
        w.append_scalars([step], [1], [2.5 / (1 + step)], [time.time()])
    w.flush(step)
    time.sleep(dt)
print("READY", flush=True)
if mode == "close":
    w.close()
else:
    while True:
        w.flush()
        time.sleep(dt)
"""


def start_writer(path, steps, val_from=10**9, dt=0.02, mode="idle") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(steps), str(val_from), str(dt), mode],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


WAIT_MS = 30_000   # generous deadlines: a loaded machine only makes these waits longer


def wait_until(condition, timeout_ms: int = WAIT_MS) -> None:
    """Spin Qt's event queue until ``condition()``; a plain processEvents loop, so it keeps
    working after an earlier test quit the application's event loop (qtbot.wait would not)."""
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_ms / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {condition}")
        QApplication.processEvents()
        time.sleep(0.003)


def wait_readable(path, timeout=20.0) -> None:
    from trainspect.analysis import RunFileError, open_run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open_run(path) as r:
                if r.scalar_names():
                    return
        except RunFileError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{path} never became readable")


@pytest.fixture
def window(qtbot):
    from trainspect.app.gui.main_window import MainWindow

    w = MainWindow()
    w.resize(1200, 800)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


@pytest.fixture
def writers():
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
        if p.stdout:
            p.stdout.close()


def first_plot(window):
    return next(iter(window.scalars.plots.values()))


def curve_len(window, metric, entry) -> int:
    curve = window.scalars.curves.get((metric, entry.key))
    return 0 if curve is None else curve.n_points


def test_points_arrive_and_a_metric_first_logged_mid_run_appears(window, writers, qtbot, tmp_path):
    path = tmp_path / "live.h5"
    writers.append(start_writer(path, steps=120, val_from=60, dt=0.02, mode="idle"))
    wait_readable(path)
    entry = open_runs(window, [path])[0]
    n0 = curve_len(window, "train/loss", entry)
    assert "val/loss" not in window.view.metrics
    # New points arrive without any user action ...
    wait_until(lambda: curve_len(window, "train/loss", entry) > n0 + 20, timeout_ms=WAIT_MS)
    # ... and val/loss, first logged at step 60, joins the plots and the metric browser.
    wait_until(lambda: curve_len(window, "val/loss", entry) > 0, timeout_ms=WAIT_MS)
    assert "val/loss" in window.view.metrics
    assert "val/loss" in window.metrics.visible_metrics()
    wait_until(lambda: curve_len(window, "train/loss", entry) == 120, timeout_ms=WAIT_MS)
    assert window.live.status(entry).state == "live"
    assert "live" in window.run_list.list.item(0).text()


def test_follow_stops_on_pan_and_the_toggle_brings_the_newest_step_back(window, writers, qtbot, tmp_path):
    path = tmp_path / "follow.h5"
    writers.append(start_writer(path, steps=250, dt=0.02, mode="idle"))
    wait_readable(path)
    entry = open_runs(window, [path])[0]
    assert window.live.follow and window.follow_action.isChecked()
    vb = first_plot(window).getViewBox()
    # Following: the x range keeps up with the newest step.
    wait_until(lambda: curve_len(window, "train/loss", entry) > 40, timeout_ms=WAIT_MS)
    wait_until(lambda: vb.viewRange()[0][1] >= window.scalars.curves[("train/loss", entry.key)].last_step,
                    timeout_ms=WAIT_MS)
    # The user pans to the start: following stops and the view stays put while data arrives.
    vb.setXRange(0, 10, padding=0)
    assert not window.live.follow and not window.follow_action.isChecked()
    n = curve_len(window, "train/loss", entry)
    wait_until(lambda: curve_len(window, "train/loss", entry) > n + 30, timeout_ms=WAIT_MS)
    x0, x1 = vb.viewRange()[0]
    assert (x0, x1) == pytest.approx((0, 10), abs=1e-6)
    # The toolbar toggle brings the newest step back into view.
    window.follow_action.trigger()
    assert window.live.follow and window.view.step_range is None
    wait_until(lambda: vb.viewRange()[0][1] >= window.scalars.curves[("train/loss", entry.key)].last_step - 1,
                    timeout_ms=WAIT_MS)


def test_killed_writer_is_reported_as_stopped_at_its_last_step(window, writers, qtbot, tmp_path, monkeypatch):
    import trainspect.analysis.run as run_module

    # Injected, but not tight: a writer starved of CPU for 0.5 s must not read as stale.
    monkeypatch.setattr(run_module, "STALE_MIN_SECONDS", 2.0)
    path = tmp_path / "killed.h5"
    proc = start_writer(path, steps=30, dt=0.02, mode="idle")
    writers.append(proc)
    assert proc.stdout.readline().strip() == "READY"    # step 29 is flushed
    entry = open_runs(window, [path])[0]
    wait_until(lambda: window.live.status(entry) is not None and window.live.status(entry).state == "live")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: "writer stopped responding at step 29" in window.run_list.list.item(0).text(),
                    timeout_ms=WAIT_MS)
    assert "writer stopped responding at step 29" in window.run_state.text()
    assert window.live.status(entry).state == "stale"


def test_finished_run_shows_its_last_step_and_is_no_longer_polled(writers, qtbot, tmp_path):
    from trainspect.app.gui.live import LiveTail
    from trainspect.app.gui.model import RunsModel

    path = tmp_path / "done.h5"
    proc = start_writer(path, steps=20, dt=0.01, mode="close")
    writers.append(proc)
    wait_readable(path)
    runs = RunsModel()
    live = LiveTail(runs, fast_ms=20, live_max_ms=40, idle_ms=300)
    entry = runs.open(path)
    states = []
    live.statusChanged.connect(lambda e, st: states.append(st.state))
    wait_until(lambda: bool(states) and states[-1] == "finished", timeout_ms=WAIT_MS)
    assert live.status_text(entry) == "finished at step 19"
    assert len(recorded(runs.current, "train/loss")) == 20
    # Finished runs are final: nothing is read any more and the timer slows to the idle pace.
    wait_until(lambda: live.interval_ms == 300, timeout_ms=WAIT_MS)
    refreshes = []
    entry.run.unguarded.refresh = lambda: refreshes.append(1) or 0
    live.poll()
    assert refreshes == []
    live.stop()
    runs.close_all()
