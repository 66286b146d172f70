"""Imported logs with steps the run file cannot hold keep every other value, and say what was left out.

A step of 2**63 in a CSV crashed `trainspect import` with OverflowError; one between 2**53 and
2**63 made the recorder refuse the whole column while the summary printed it as written
("6 values of 2 metrics", then `info` showed 0 metrics). TensorBoard event files (int64 steps)
had the same hole.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.recorder.importers import convert

HUGE = [2 ** 53, 2 ** 53 + 2, 2 ** 63 - 1, 2 ** 63, 10 ** 30]


@pytest.mark.parametrize("huge", HUGE)
def test_wide_csv_keeps_the_rows_with_usable_steps(tmp_path, huge):
    src = tmp_path / "metrics.csv"
    src.write_text(f"step,loss,acc\n0,1.0,0.5\n1,0.9,0.6\n{huge},0.8,0.7\n2,0.7,0.8\n")
    summary = convert(src, tmp_path / "run.h5")
    assert summary.points == {"loss": 3, "acc": 3}
    assert summary.bad_steps == 1 and summary.skipped_rows == 0
    assert "1 row left out (step not a whole number in [0, 2**53))" in summary.describe()
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar("loss").steps.tolist() == [0, 1, 2]
        np.testing.assert_allclose(run.scalar("acc").values, [0.5, 0.6, 0.8])


def test_long_csv_tells_bad_steps_from_unreadable_rows(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text(f"step,metric,value\n0,loss,1.0\n-1,loss,2\n{2 ** 63},loss,3\n2.5,loss,4\nx,loss,5\n7\n1,loss,0.5\n")
    summary = convert(src, tmp_path / "run.h5")
    assert summary.points == {"loss": 2}
    assert (summary.bad_steps, summary.skipped_rows) == (3, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_tensorboard_log_keeps_the_values_with_usable_steps(tmp_path, seed):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(seed)
    loss = rng.uniform(0.5, 2.0, 5)
    w = SummaryWriter(str(tmp_path / "tb"))
    for s, v in zip([0, 1, 2 ** 53 + 2, 2, 2 ** 62], loss):
        w.add_scalar("train/loss", float(v), s)
    w.close()
    summary = convert(tmp_path / "tb", tmp_path / "run.h5")
    assert summary.points == {"train/loss": 3} and summary.bad_steps == 2
    assert "2 values left out" in summary.describe()
    with open_run(tmp_path / "run.h5") as run:
        series = run.scalar("train/loss")
        assert series.steps.tolist() == [0, 1, 2]
        np.testing.assert_allclose(series.values, loss[[0, 1, 3]], rtol=1e-6)
