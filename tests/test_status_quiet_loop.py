"""A live run whose training loop stopped logging says for how long: the writer's heartbeat goes
on while a DataLoader or a collective hangs, so 25 s into a hang the run read "live, step 49"
like a healthy one (trial 17, F16), in `info`, `tail` and the app's run list."""
import math
import time

from trainspect import Recorder
from trainspect.analysis import open_run
from trainspect.analysis.vocab import RunState
from trainspect.analysis import run as run_module
from trainspect.analysis.run import RunStatus


def test_describe_names_the_quiet_time_of_a_live_run_only():
    live = RunStatus(RunState.LIVE, 49, time.time(), 0.5, "", quiet_s=26.0)
    assert live.describe() == "live, step 49, no new value for 26 s"
    assert RunStatus(RunState.LIVE, 49, time.time(), 0.5, "", quiet_s=3.0).describe() == "live, step 49"
    assert RunStatus(RunState.LIVE, 49, time.time(), 0.5).describe() == "live, step 49"     # unknown
    assert "no new value" not in RunStatus(RunState.FINISHED, 49, time.time(), 0.5, "", quiet_s=99).describe()


def test_a_live_run_that_stopped_logging_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "QUIET_SECONDS", 0.3)
    path = tmp_path / "hang.h5"
    with Recorder(path, flush_every=0.05) as rec:
        for step in range(5):
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
        rec.flush()
        with open_run(path) as run:
            fresh = run.status()
            time.sleep(0.6)                    # the loop hangs; the writer keeps flushing
            run.refresh()
            hung = run.status()
        assert fresh.state == hung.state == RunState.LIVE
        assert math.isfinite(hung.quiet_s) and hung.quiet_s >= 0.5
        assert "no new value for" in hung.describe()
        assert fresh.quiet_s < hung.quiet_s
    with open_run(path) as run:                # finished: nothing to say
        assert math.isnan(run.status().quiet_s)
