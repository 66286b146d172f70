"""A report's memory does not grow with the run (trial14 A6: ~170 B a scalar row, 840 MB for a
20 M-row run): its plots and summary read the metrics' bounded views, block by block, and the
last points of a long loss from the end of the table, not whole columns."""
import tracemalloc

import numpy as np

from trainspect.analysis import open_run
from trainspect.app.report.content import build_report, open_runs, run_summary
from trainspect.recorder import Recorder


def _long_run(path, n_steps: int):
    rng = np.random.default_rng(0)
    with Recorder(path, name=path.stem) as rec:
        for lo in range(0, n_steps, 200_000):
            steps = np.arange(lo, min(n_steps, lo + 200_000))
            loss = 2.0 * np.exp(-3.0 * steps / n_steps) + rng.normal(0, 0.05, steps.size)
            rec.log_many({"train/loss": loss, "val/loss": loss + 0.1}, steps=steps)
    return path


def _peak_mb(path) -> float:
    runs = open_runs([path])
    try:
        tracemalloc.start()
        try:
            build_report(runs)
            return tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()
    finally:
        runs[0].close()


def test_a_report_of_twice_the_rows_takes_no_more_memory(tmp_path):
    small = _peak_mb(_long_run(tmp_path / "small.h5", 600_000))       # 1.2 M scalar rows
    large = _peak_mb(_long_run(tmp_path / "large.h5", 1_200_000))     # 2.4 M: whole columns took ~2x
    assert large < 1.3 * small + 5, (small, large)
    assert large < 40 * 2.4, (small, large)          # MB: under 40 B a row (56 before at 2.4 M rows, ~25 now)


def test_the_summary_of_a_long_run_is_the_whole_series(tmp_path):
    """Last, best and the median of the last 10 as read from the whole columns."""
    path = _long_run(tmp_path / "run.h5", 400_000)
    runs = open_runs([path])
    try:
        _, metrics = run_summary(runs[0])
    finally:
        runs[0].close()
    with open_run(path) as run:
        whole = run.scalar("train/loss").values
    assert metrics["train_last"] == whole[-1]
    assert metrics["train_best"] == whole.min()
    assert metrics["train_end"] == float(np.median(whole[-10:]))
