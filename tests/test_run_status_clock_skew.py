"""A live writer whose clock runs 30 s behind the reader's (or a mirror of a cluster node's run)
read as "writer stopped responding": `diagnose` exited 3 and `tail` printed "stale" on every line
while the steps kept rising (attack round 4, B6). Once its heartbeat is seen to move, liveness is
judged by the reader's own clock (a heartbeat that stops moving is still stale: test_killed_writer,
the paused-writer tests of tail)."""
from __future__ import annotations

import time

from trainspect.analysis import open_run
from trainspect.analysis import run as run_module
from trainspect.analysis.run import RunState
from trainspect.recorder import Recorder


def test_a_writer_clock_behind_the_readers_is_live_while_its_heartbeat_moves(tmp_path, monkeypatch):
    path = tmp_path / "skew.h5"
    real_time = time.time
    monkeypatch.setattr(run_module.time, "time", lambda: real_time() + 30.0)
    rec = Recorder(path)
    try:
        rec.log({"loss": 1.0}, step=0)
        rec.flush()
        with open_run(path) as run:
            run.status()                                       # one look: 30 s old by this clock
            for step in range(1, 4):
                time.sleep(1.1)                                # the heartbeat is in whole-ish seconds
                rec.log({"loss": 1.0 / (step + 1)}, step=step)
                rec.flush()
                assert run.status().state == RunState.LIVE, step
    finally:
        rec.close()


def test_one_shot_diagnose_and_info_agree_that_the_skewed_writer_is_live(tmp_path, monkeypatch, capsys):
    """One look gave a 'live' header with exit 3, or 'stopped responding' while --json said 'live'."""
    from trainspect.app.cli import main

    path = tmp_path / "skew.h5"
    real_time = time.time
    monkeypatch.setattr(run_module.time, "time", lambda: real_time() + 30.0)
    rec = Recorder(path, flush_every=0.2)
    try:
        for step in range(30):
            rec.log({"loss": 1.0 / (step + 1)}, step=step)
        rec.flush()
        assert main(["diagnose", str(path)]) == 0
        assert ": live" in capsys.readouterr().out.splitlines()[0]
        assert main(["info", str(path)]) == 0
        assert "stopped responding" not in capsys.readouterr().out
    finally:
        rec.close()
