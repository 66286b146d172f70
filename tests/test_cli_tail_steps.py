"""`trainspect tail` on a run written as a watched training loop writes it (nanoGPT's trial).

The recorder writes some of a step's values (``sys/data_wait`` at the next forward) before
the loop logs that step's loss. The line's "step N" followed the table's largest step, so it
was one ahead of every value on it, each noted "(step N-1)"; and the last step's loss, which
came with the run's end at an unchanged step, was never printed before "finished".
"""
from __future__ import annotations

import subprocess
import sys

from trainspect.analysis import open_run
from trainspect.app.commands.tail import snapshot_line
from trainspect.recorder.claim import WriterLock
from trainspect.recorder.h5file import RunFileWriter

TAGS = ["train/loss", "sys/grad_norm", "sys/data_wait"]


def loss(step: int) -> float:
    return 2.0 / (step + 1)


def grad(step: int) -> float:
    return 1.0 + step / 8


def write_step(w: RunFileWriter, step: int, next_forward: bool = True) -> None:
    """A step's loss and gradient norm; the next step's data wait, as its first forward records it."""
    rows = [(step, 0, loss(step)), (step, 1, grad(step))] + ([(step + 1, 2, 0.01)] if next_forward else [])
    steps, tags, values = zip(*rows)
    w.append_scalars(list(steps), list(tags), list(values), [0.0] * len(rows))
    w.flush(max(steps))


def start_run(path) -> tuple:
    lock = WriterLock(path)
    assert lock.acquire()
    w = RunFileWriter(path)
    w.start({"name": "loop"}, flush_every=0.05)
    w.add_tags(TAGS)
    return lock, w


def start_tail(path, interval: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainspect.app.cli", "tail", str(path), "--interval",
                             str(interval), "--advisor-every", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_the_line_is_at_the_step_of_its_values(tmp_path):
    path = tmp_path / "run.h5"
    lock, w = start_run(path)
    for step in range(5):
        write_step(w, step)
    w.close()
    lock.release()
    with open_run(path) as run:
        line = snapshot_line(run, run.status(), run.scalar_summary())
    assert line == f"step      4 | train/loss {loss(4):.4g} | grad norm {grad(4):.4g} | finished", line


def test_live_tail_prints_the_last_steps_values_before_finished(tmp_path):
    path = tmp_path / "run.h5"
    lock, w = start_run(path)
    for step in range(5):
        write_step(w, step)
    tail = start_tail(path, 0.05)
    try:
        seen = [tail.stdout.readline()]
        while seen[-1] and not seen[-1].startswith("step"):
            seen.append(tail.stdout.readline())
        write_step(w, 5, next_forward=False)   # the last step: its loss comes with the run's end
        w.close()
        lock.release()
        rest, err = tail.communicate(timeout=120)
    finally:
        if tail.poll() is None:
            tail.kill()
    out = "".join(seen) + rest
    lines = [ln for ln in out.splitlines() if ln.startswith("step")]
    assert tail.returncode == 0, out + err
    assert lines[-1].startswith(f"step      5 | train/loss {loss(5):.4g} | grad norm {grad(5):.4g} | "), out
    assert lines[0] == f"step      4 | train/loss {loss(4):.4g} | grad norm {grad(4):.4g} | live", out
    assert not any("(step" in ln for ln in lines), out
    assert out.splitlines()[-1] == "loop: finished at step 5", out


def test_tail_keeps_following_a_writer_that_pauses_while_it_holds_the_run(tmp_path):
    """A writer suspended (Ctrl-Z, SIGSTOP) or stalled for more than the 10 s heartbeat grace:
    tail printed "writer stopped responding" and left for good, and the run then went on to
    finish unwatched. While the writer still holds the run's lock, tail follows on."""
    import time

    from trainspect.analysis.run import STALE_MIN_SECONDS

    path = tmp_path / "run.h5"
    lock, w = start_run(path)
    for step in range(3):
        write_step(w, step)
    tail = start_tail(path, 0.1)
    try:
        time.sleep(STALE_MIN_SECONDS + 3)           # no flush, no heartbeat; the lock is still held
        assert tail.poll() is None, tail.communicate()
        write_step(w, 3, next_forward=False)
        w.close()
        lock.release()
        out, err = tail.communicate(timeout=120)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, out + err
    assert "still holds the run (suspended or stalled?): still following" in out, out
    assert out.splitlines()[-1] == "loop: finished at step 3", out
