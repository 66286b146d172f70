"""A forked child (DataLoader worker, multiprocessing with fork) holds copies of its parent's
Recorders. A child's Recorder(path, resume=True) closed the parent's copy, unlinked its lock,
resumed the live file and left it refused by every reader; a child's log() vanished silently
and its flush() waited 0.1 s and warned of 60. The copies are inert: the child gets
RunFileInUse, one clear warning, and the parent's run finishes intact."""
from __future__ import annotations

import os
import warnings

import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.claim import RunFileInUse


def _in_child(fn) -> str:
    """Run ``fn`` in a forked child; what it returns (a short text) comes back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = fn()
            out += "|" + "|".join(str(c.message) for c in caught)
        except BaseException as exc:  # noqa: BLE001
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, out.encode()[:60000])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # fork() of a process with threads
@pytest.mark.parametrize("child", ["resume", "overwrite", "log", "exit"])
def test_a_forked_child_leaves_the_parents_live_run_alone(tmp_path, child):
    path = tmp_path / "run.h5"
    rec = Recorder(path)
    for s in range(10):
        rec.log({"loss": float(s)}, step=s)
    rec.flush()

    def in_child():
        if child in ("resume", "overwrite"):
            Recorder(path, **{child: True})
            return "opened"
        if child == "log":
            rec.log({"loss": -1.0}, step=99)
            return f"flushed={rec.flush()}"
        rec.close()               # a worker that winds down: its atexit and finalizers run
        return "closed"

    said = _in_child(in_child)
    if child in ("resume", "overwrite"):
        assert said.startswith(RunFileInUse.__name__), said
    if child == "log":
        assert said.startswith("flushed=False") and "forked" in said, said
    for s in range(10, 20):
        rec.log({"loss": float(s)}, step=s)
    rec.close()
    with open_run(path) as run:
        assert run.status().state == "finished"
        assert run.scalar("loss").steps.tolist() == list(range(20))
    assert not list(tmp_path.glob("run-*.h5"))
