"""Scripts launched at once on one run path (a sweep, a second terminal): each is recorded, in
its own file. The default Recorder(path) numbers on past a path a live writer holds, as it does
past a finished run, with one warning naming the file written; it used to raise RunFileInUse in
all but one of them, killing the user's script. resume=True/overwrite=True still refuse."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.claim import RunFileInUse
from trainspect.recorder.recorder import RecorderWarning

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 60.0


def _script(path, go, hold, n_rows, kwargs=""):
    """Waits for ``go`` to exist, opens Recorder(path, kwargs), logs rows tagged with its pid,
    says where it writes (and every warning), then holds the file until ``hold`` vanishes."""
    return textwrap.dedent(f"""
        import os, sys, time, warnings
        from trainspect.recorder import Recorder
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            try:
                rec = Recorder({str(path)!r}{kwargs})
            except Exception as exc:
                print("refused", type(exc).__name__, exc, flush=True)
                sys.exit(2)
        for i in range({n_rows}):
            rec.log({{"loss": float(i), "pid": float(os.getpid())}}, step=i)
        rec.flush()
        print("wrote", rec.path, "|", " / ".join(str(w.message) for w in said), flush=True)
        while os.path.exists({str(hold)!r}):
            time.sleep(0.02)
        rec.close()
    """)


def _launch(tmp_path, n, path, kwargs="", n_rows=200):
    go, hold = tmp_path / "go", tmp_path / "hold"
    hold.touch()
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT.parent)))
    procs = [subprocess.Popen([sys.executable, "-c", _script(path, go, hold, n_rows, kwargs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    time.sleep(0.5)            # (not needed for correctness: every outcome below is checked)
    go.touch()
    lines = [(p, p.stdout.readline().strip()) for p in procs]
    hold.unlink()
    for p in procs:
        p.wait(timeout=DEADLINE)
    return [(p.pid, p.returncode, line, p.stderr.read()) for p, line in lines]


@pytest.mark.parametrize("trial", range(3))
def test_scripts_launched_at_once_on_one_path_are_all_recorded(tmp_path, trial):
    path = tmp_path / "runs" / "exp.h5"
    n_rows = 300 + 100 * trial
    out = _launch(tmp_path, 3, path, n_rows=n_rows)
    assert all(rc == 0 and line.startswith("wrote ") for _, rc, line, _ in out), out
    written = {pid: line.split()[1] for pid, _, line, _ in out}
    assert sorted(written.values()) == sorted(str(path.parent / n) for n in ("exp.h5", "exp-2.h5", "exp-3.h5"))
    for pid, _, line, _ in out:
        f = written[pid]
        if f != str(path):    # moved on: one warning says which file this run went to, and why
            message = line.split("|", 1)[1]
            assert "is being written by" in message or "already holds a run" in message, line
            assert f"this run is recorded to {f}" in message, line
        with open_run(f) as run:        # each file holds its own script's rows, all of them
            assert run.status().state == "finished"
            assert run.scalar("loss").values.tolist() == [float(i) for i in range(n_rows)]
            assert set(run.scalar("pid").values.tolist()) == {float(pid)}


def test_resume_and_overwrite_of_a_live_run_are_still_refused(tmp_path):
    path = tmp_path / "exp.h5"
    with Recorder(path) as first:
        first.log({"loss": 1.0}, step=0)
        first.flush()
        out = _launch(tmp_path, 2, path, kwargs=", overwrite=True") + \
            _launch(tmp_path, 1, path, kwargs=", resume=True")
        first.log({"loss": 2.0}, step=1)
    assert all(rc == 2 and line.startswith("refused RunFileInUse") for _, rc, line, _ in out), out
    with open_run(path) as run:
        assert run.scalar("loss").values.tolist() == [1.0, 2.0]
    assert not (tmp_path / "exp-2.h5").exists()


def test_a_second_recorder_of_this_process_on_a_live_path_numbers_on(tmp_path):
    path = tmp_path / "exp.h5"
    with Recorder(path) as first:
        with pytest.warns(RecorderWarning, match=r"exp\.h5 is being written by this process .* recorded to .*exp-2\.h5"):
            second = Recorder(path)
        with second:
            second.log({"loss": 5.0}, step=0)
        first.log({"loss": 1.0}, step=0)
        with pytest.raises(RunFileInUse):
            Recorder(path, overwrite=True)
    assert second.path == tmp_path / "exp-2.h5" and second.name == "exp-2"
    with open_run(path) as a, open_run(second.path) as b:
        assert a.scalar("loss").values.tolist() == [1.0] and b.scalar("loss").values.tolist() == [5.0]
