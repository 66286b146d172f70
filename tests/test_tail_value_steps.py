"""`trainspect tail` shows each value with its own step where that is not the line's.

A line read 'step 120 | ... grad norm 0.348' with the gradient norm of step 118 (the newest
row there was), repeated over lines 118..121; a loss logged every 50 steps read as the
current step's. The scalar summary now keeps each metric's last step.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.app.commands.tail import snapshot_line
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1])
def test_values_of_an_earlier_step_say_so(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        for step in range(121):
            if step < 119:
                rec.log({"grad": float(rng.uniform(0.1, 1.0))}, step=step)
            if step % 50 == 0:
                rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
            rec.log({"acc": 0.5}, step=step)
    with open_run(path) as run:
        summary = run.scalar_summary()
        last = dict(zip(summary.names, summary.last_steps.tolist()))
        assert last == {"grad": 118, "train/loss": 100, "acc": 120}
        line = snapshot_line(run, run.status(), summary)
    assert line.startswith("step    120 |")
    assert "train/loss 0.009901 (step 100)" in line and "acc 0.5 |" in line and "(step 118)" in line


def test_last_steps_follow_a_resumed_run(tmp_path):
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        for step in range(100):
            rec.log({"train/loss": 1.0}, step=step)
    with Recorder(path, resume=True) as rec:
        rec.set_step(50)
        for step in range(50, 80):
            rec.log({"train/loss": 2.0}, step=step)
    with open_run(path) as run:
        summary = run.scalar_summary()
        assert summary.last_steps.tolist() == [79] and summary.last.tolist() == [2.0]
