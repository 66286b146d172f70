"""A training process killed with SIGKILL (the OOM killer, a scheduler) is known to be gone at
once: its lock sidecar stays but nobody holds it. Readers must not show it "live" for the
heartbeat's 10 s (a CI step right after it would pass), nor wait forever for a run killed
before it began recording."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from trainspect.analysis import open_run
from trainspect.analysis.vocab import RunState

REPO = Path(__file__).resolve().parents[1]

# Logs, makes sure it is on disk (flush) or not begun (a grace longer than the test), says
# "ready", then sleeps until it is killed.
CHILD = textwrap.dedent("""
    import sys, time
    import trainspect.recorder.writer_thread as wt
    from trainspect import Recorder
    path, begin = sys.argv[1], sys.argv[2] == "begin"
    if not begin:
        wt.LAYOUT_GRACE = 3600.0   # still waiting for watch() when it is killed
    rec = Recorder(path, config={"lr": 0.1})
    for i in range(20):
        rec.log({"train/loss": 1.0 / (i + 1)}, step=i)
    if begin:
        rec.flush()
    print("ready", flush=True)
    time.sleep(600)
""")


def _kill_after_ready(path: Path, begin: bool) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "begin" if begin else "wait"],
                             cwd=path.parent, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "trainspect.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_a_killed_writer_is_not_live_a_moment_later(tmp_path):
    path = tmp_path / "run.h5"
    _kill_after_ready(path, begin=True)
    with open_run(path) as run:
        status = run.status()
        assert status.state == RunState.STALE, status
        assert status.last_step == 19
        assert run.scalar("train/loss").steps.tolist() == list(range(20))   # flushed rows kept
    out = _cli("diagnose", str(path))
    assert out.returncode == 3, out   # README: 3 = the run crashed or went stale


def test_a_writer_killed_before_it_began_recording_is_reported_not_waited_for(tmp_path):
    path = tmp_path / "run.h5"
    _kill_after_ready(path, begin=False)
    info = _cli("info", str(path))
    assert info.returncode == 2
    assert "stopped before it began recording (it was killed" in info.stderr and "Traceback" not in info.stderr
    tail = _cli("tail", str(path), timeout=120)   # waited for "run is starting" forever before
    assert tail.returncode != 0 and "stopped before it began recording (it was killed" in tail.stderr


def test_a_live_writer_still_reads_live(tmp_path):
    path = tmp_path / "run.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "begin"], cwd=tmp_path,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with open_run(path) as run:
            assert run.status().state == RunState.LIVE
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)


def test_the_app_says_when_a_stopped_writer_was_last_heard_not_an_age():
    """A window shows its status text for minutes: '(0 s ago)' was built once and never counted up."""
    import time

    from trainspect.analysis.run import RunStatus
    from trainspect.analysis.vocab import RunState

    heard = time.time() - 42
    st = RunStatus(RunState.STALE, 243, heard, 42.0)
    assert st.describe() == "writer stopped responding at step 243 (42 s ago)"
    clock = st.describe(clock=True)   # a time of day (with the date once midnight has passed)
    assert clock.startswith("writer stopped responding at step 243 (last heard at ") and "ago" not in clock
    assert time.strftime("%H:%M", time.localtime(heard)) in clock
