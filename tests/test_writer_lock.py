"""One writer per run file, and no run replaced without being asked (issue 11 part 2).

Covers recorder/claim.py: the writer lock, the ``exp1-2.h5`` naming, ``overwrite=True``,
and the two-writer / overwrite trials (real processes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.claim import RunFileInUse, lock_path
from trainspect.recorder.recorder import RecorderWarning

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 60.0


def _rows(path, name="loss"):
    with open_run(path) as r:
        s = r.scalar(name)
        return s.steps.tolist(), s.values.tolist()


def _writer_script(path, n_rows, hold_file, extra=""):
    """A child that logs ``n_rows`` rows, flushes, says so, then waits for ``hold_file`` to vanish."""
    return textwrap.dedent(f"""
        import os, sys, time
        from trainspect.recorder import Recorder
        {extra}
        rec = Recorder({str(path)!r})
        for i in range({n_rows}):
            rec.log({{"loss": float(i)}}, step=i)
        rec.flush()
        print("flushed", rec.path, flush=True)
        while os.path.exists({str(hold_file)!r}):
            time.sleep(0.02)
        rec.close()
        print("closed", flush=True)
    """)


def _spawn(code, **kw):
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT.parent)))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def _wait_line(proc, prefix):
    line = proc.stdout.readline()
    assert line.startswith(prefix), (line, proc.stderr.read() if proc.poll() is not None else "")
    return line


def test_a_second_recorder_on_a_live_run_fails_at_once_and_the_first_goes_on(tmp_path):
    # (the default numbers on instead: tests/test_recorder_concurrent_launch.py)
    path = tmp_path / "exp1.h5"
    with Recorder(path) as first:
        first.log({"loss": 1.0}, step=0)
        for kwargs in ({"overwrite": True}, {"resume": True, "strict": False}):
            with pytest.raises(RunFileInUse, match="exp1.h5 is being written by this process"):
                Recorder(path, **kwargs)
        first.log({"loss": 2.0}, step=1)
    assert _rows(path) == ([0, 1], [1.0, 2.0])
    assert not lock_path(path).exists(), "a clean close leaves no lock file behind"


def test_an_existing_run_is_never_replaced_by_default(tmp_path):
    path = tmp_path / "exp1.h5"
    with Recorder(path) as rec:
        rec.log({"loss": 7.0}, step=3)
    before = path.read_bytes()
    written = []
    for expected in ("exp1-2.h5", "exp1-3.h5"):
        with pytest.warns(RecorderWarning, match=f"already holds a run; this run is recorded to .*{expected}"):
            rec = Recorder(path)
        with rec:
            rec.log({"loss": 1.0}, step=0)
        assert rec.path == tmp_path / expected and rec.name == Path(expected).stem
        written.append(rec.path)
    assert path.read_bytes() == before
    assert _rows(path) == ([3], [7.0])
    assert all(_rows(p) == ([0], [1.0]) for p in written)


def test_overwrite_replaces_the_run_and_an_open_reader_keeps_the_old_one(tmp_path):
    path = tmp_path / "exp1.h5"
    with Recorder(path) as rec:
        for i in range(100):
            rec.log({"loss": float(i)}, step=i)
    with open_run(path) as old:
        assert len(old.scalar("loss")) == 100
        with Recorder(path, overwrite=True) as rec:
            rec.log({"loss": -1.0}, step=0)
            rec.flush()
            old.refresh()   # the old inode is untouched: no "Can't deserialize object header"
            assert old.scalar("loss").values[-1] == 99.0 and old.status().state == "finished"
    assert rec.path == path and _rows(path) == ([0], [-1.0])


def test_plain_h5py_readers_with_default_locking_still_open_a_live_run(tmp_path):
    # The lock is a sidecar: h5py's own flock on the run file must not collide with it.
    path = tmp_path / "live.h5"
    with Recorder(path) as rec:
        rec.log({"loss": 1.0}, step=0)
        rec.flush()
        # Another process (in this one HDF5 refuses opens whose locking flag differs from the writer's).
        code = f"import h5py; f = h5py.File({str(path)!r}, 'r', swmr=True); print(f[{fmt.SCALAR_VALUE!r}].shape[0])"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE)
        assert out.returncode == 0 and int(out.stdout) >= 1, out.stderr


def test_a_killed_writer_frees_its_run_for_the_next(tmp_path):
    path, hold = tmp_path / "exp1.h5", tmp_path / "hold"
    hold.touch()
    proc = _spawn(_writer_script(path, 500, hold))
    _wait_line(proc, "flushed")
    with pytest.raises(RunFileInUse, match=f"process {proc.pid}"):
        Recorder(path, overwrite=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE)
    assert _rows(path)[0] == list(range(500))      # every flushed row survived the kill
    with pytest.warns(RecorderWarning, match="exp1-2.h5"):
        with Recorder(path) as rec:
            pass
    with Recorder(path, overwrite=True) as rec:   # the dead writer's lock went with it
        rec.log({"loss": 5.0}, step=0)
    assert _rows(path) == ([0], [5.0])


@pytest.mark.parametrize("trial", range(3))
def test_two_writer_trial(tmp_path, trial):
    """Two processes start on one path: both record, each in its own file; no row is lost."""
    path, hold = tmp_path / "shared.h5", tmp_path / "hold"
    hold.touch()
    n = 2000 + 1000 * trial
    procs = [_spawn(_writer_script(path, n, hold)) for _ in range(2)]
    outcomes = []
    for p in procs:
        line = p.stdout.readline()
        if line.startswith("flushed"):
            outcomes.append(("wrote", p, line.split()[1]))
        else:
            p.wait(timeout=DEADLINE)
            outcomes.append(("refused", p, p.stderr.read()))
    hold.unlink()
    for _, p, _ in outcomes:
        p.wait(timeout=DEADLINE)
    kinds = sorted(k for k, _, _ in outcomes)
    # Whoever claimed first, the other warned and took shared-2.h5 (a live writer's path is
    # passed over like a finished run's).
    assert kinds == ["wrote", "wrote"], outcomes
    files = sorted(detail for _, _, detail in outcomes)
    assert files == sorted({str(path), str(tmp_path / "shared-2.h5")}), files
    for f in files:
        steps, values = _rows(f)
        assert steps == list(range(n)) and values == [float(i) for i in range(n)]
        with open_run(f) as r:
            assert r.status().state == "finished"


def test_ranks_agree_on_the_new_name(tmp_path, monkeypatch):
    """A single-process run holds exp1.h5; a 2-rank job then picks exp1-2 on both ranks,
    whichever rank comes first (a sibling's fresh, locked file does not push the other on)."""
    with Recorder(tmp_path / "exp1.h5") as rec:
        rec.log({"loss": 1.0}, step=0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for first, second in ((1, 0), (0, 1)):
        for p in tmp_path.glob("exp1-2*"):
            p.unlink()
        monkeypatch.setenv("RANK", str(first))
        a = Recorder(tmp_path / "exp1.h5")
        monkeypatch.setenv("RANK", str(second))
        b = Recorder(tmp_path / "exp1.h5")
        paths = {r: rec.path.name for r, rec in ((first, a), (second, b))}
        a.close()
        b.close()
        assert paths == {0: "exp1-2.h5", 1: "exp1-2.rank1.h5"}
    with Recorder(tmp_path / "exp1.h5") as rec:   # rank 1 of the next launch: exp1-2 is a finished run
        assert rec.path.name == "exp1-3.rank1.h5"


OLD_RUN = """
import os, signal, sys, time
from trainspect.recorder import Recorder
path, n, end = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rec = Recorder(path)
for i in range(n):
    rec.log({"loss": float(i)}, step=i)
if end == "finished":
    rec.close()
elif end == "terminated":
    os.kill(os.getpid(), signal.SIGTERM)
else:
    rec.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("end", ["finished", "terminated", "killed"])
def test_overwrite_trial(tmp_path, end):
    """Overwrite trial: a new run started on the path of a finished, SIGTERM'd or kill -9'd run
    leaves every byte of it in place; only overwrite=True replaces it."""
    path, n = tmp_path / "exp1.h5", 3000
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT.parent)))
    subprocess.run([sys.executable, "-c", OLD_RUN, str(path), str(n), end], env=env, timeout=DEADLINE)
    before = path.read_bytes()
    assert _rows(path)[0] == list(range(n))
    for i in range(2, 4):
        with pytest.warns(RecorderWarning, match=f"exp1-{i}.h5"):
            with Recorder(path) as rec:
                rec.log({"loss": -1.0}, step=0)
    assert path.read_bytes() == before
    with Recorder(path, overwrite=True) as rec:
        rec.log({"loss": -2.0}, step=0)
    assert _rows(path) == ([0], [-2.0])
    assert _rows(tmp_path / "exp1-2.h5") == ([0], [-1.0])


# A writer of an older trainspect: the run file's own writer (h5file.RunFileWriter), no sidecar
# lock. It flushes (heartbeat) every 0.1 s until ``hold`` vanishes, then closes the file.
OLD_WRITER = """
import os, sys, time
import numpy as np
from trainspect.recorder.h5file import RunFileWriter
path, hold = sys.argv[1], sys.argv[2]
w = RunFileWriter(path)
w.start({"name": "old"}, flush_every=0.1)
w.add_tags(["loss"])
step = 0
while os.path.exists(hold):
    w.append_scalars(np.array([step]), np.array([0], np.int32), np.array([float(step)]), np.array([time.time()]))
    w.flush(step)
    if step == 0:
        print("writing", flush=True)
    step += 1
    time.sleep(0.1)
w.close(last_step=step - 1)
print("closed", step, flush=True)
"""


def _old_writer(path, hold):
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT.parent)))
    return subprocess.Popen([sys.executable, "-c", OLD_WRITER, str(path), str(hold)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("mode", ["resume", "overwrite"])
def test_a_writer_without_the_lock_is_detected_by_its_heartbeat(tmp_path, mode):
    """Issue 11 part 2: a live writer that takes no lock (an older trainspect) is refused like a
    locked one; the run it writes is untouched and goes on; once it is gone the path is free."""
    path, hold = tmp_path / "old.h5", tmp_path / "hold"
    hold.touch()
    proc = _old_writer(path, hold)
    _wait_line(proc, "writing")
    assert not fmt.lock_path(path).exists()
    with pytest.raises(RunFileInUse, match="holds no trainspect lock.*heartbeat"):
        Recorder(path, resume=mode == "resume", overwrite=mode == "overwrite")
    assert not fmt.lock_path(path).exists()      # the refused recorder let go of its lock
    with pytest.warns(RecorderWarning, match="old-2.h5"):   # the default path never touches it
        with Recorder(path) as rec:
            rec.log({"loss": 1.0}, step=0)
    hold.unlink()
    line = _wait_line(proc, "closed")
    proc.wait(timeout=DEADLINE)
    n = int(line.split()[1])
    assert _rows(path) == (list(range(n)), [float(i) for i in range(n)])   # every row of the old writer
    with Recorder(path, resume=mode == "resume", overwrite=mode == "overwrite") as rec:   # closed: free
        rec.log({"loss": -1.0}, step=n)


def test_a_killed_writer_without_the_lock_is_not_taken_for_a_live_one(tmp_path):
    path, hold = tmp_path / "old.h5", tmp_path / "hold"
    hold.touch()
    proc = _old_writer(path, hold)
    _wait_line(proc, "writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE)
    with Recorder(path, resume=True) as rec:   # its heartbeat stopped: resumed (after <= 2 flush intervals)
        rec.log({"loss": -1.0}, step=10_000)
    with open_run(path) as r:
        assert r.scalar("loss").steps[-1] == 10_000 and r.sessions == 2
