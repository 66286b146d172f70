"""Run.scalar_summary(): what info and tail show (counts, last values, last step) in one
bounded pass, incremental on a live run, and blind to rows that name no metric."""
from __future__ import annotations

import numpy as np
import pytest

import trainspect.analysis.run as run_module
from trainspect.analysis import open_run
from trainspect.recorder.h5file import RunFileWriter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_matches_the_series_across_blocks_and_appends(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(run_module, "SUMMARY_READ_BLOCK", 97)   # many blocks, odd boundaries
    rng = np.random.default_rng(seed)
    w = RunFileWriter(tmp_path / "s.h5")
    w.start({"name": "s"})
    w.add_tags(["a", "b", "c", "sys/lr"])

    def append(n, first_step):
        tags = rng.integers(0, 3, n).astype(np.int32)   # "sys/lr" never logged
        w.append_scalars(first_step + np.arange(n), tags, rng.normal(size=n), np.zeros(n))
        w.flush(first_step + n - 1)

    append(1000, 0)
    run = open_run(tmp_path / "s.h5")   # live: the writer holds the file
    first = run.scalar_summary()
    append(500, 1000)
    w.add_tags(["d"])
    w.append_scalars([1500], [4], [7.5], [0.0])
    w.flush(1500)
    second = run.scalar_summary()
    w.close()
    with open_run(tmp_path / "s.h5") as fresh:
        for summary, reader in ((second, run), (fresh.scalar_summary(), fresh)):
            assert summary.names == ["a", "b", "c", "sys/lr", "d"] and summary.rows == 1501
            assert summary.max_step == 1500
            for i, name in enumerate(summary.names):
                s = reader.scalar(name)
                assert summary.counts[i] == len(s)
                assert (np.isnan(summary.last[i]) if not len(s) else summary.last[i] == s.values[-1])
    assert first.rows == 1000 and first.max_step == 999 and first.counts.sum() == 1000
    run.close()


def test_rows_naming_no_metric_are_not_counted(tmp_path):
    w = RunFileWriter(tmp_path / "t.h5")
    w.start({"name": "t"})
    w.add_tags(["a"])
    w.append_scalars([0, 1, 2, 3], np.array([0, -1, 5, 0], np.int32), [1.0, 2.0, 3.0, 4.0], np.zeros(4))
    w.close()
    with open_run(tmp_path / "t.h5") as run:
        summary = run.scalar_summary()
        assert summary.counts.tolist() == [2] and summary.last.tolist() == [4.0] and summary.max_step == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_nonfinite_step_of_each_metric_across_blocks_and_appends(tmp_path, monkeypatch, seed):
    """What ``info`` prints as "(NaN/Inf from step N)": the earliest step of each metric whose
    value is NaN or Inf, also when rows arrive out of step order and in several reads."""
    monkeypatch.setattr(run_module, "SUMMARY_READ_BLOCK", 89)
    rng = np.random.default_rng(seed)
    w = RunFileWriter(tmp_path / "n.h5")
    w.start({"name": "n"})
    w.add_tags(["a", "b", "c"])
    n = 1200
    steps = rng.permutation(n)                 # rows out of step order
    tags = rng.integers(0, 3, n).astype(np.int32)
    values = rng.normal(size=n)
    bad = rng.random(n) < 0.02
    bad &= tags != 2                           # "c" stays finite
    values[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    w.append_scalars(steps[:700], tags[:700], values[:700], np.zeros(700))
    w.flush(int(steps[:700].max()))
    run = open_run(tmp_path / "n.h5")
    run.scalar_summary()                       # incremental: the second call reads the rest
    w.append_scalars(steps[700:], tags[700:], values[700:], np.zeros(n - 700))
    w.close()
    expected = [int(steps[bad & (tags == t)].min()) if (bad & (tags == t)).any() else -1 for t in range(3)]
    assert expected[2] == -1 and max(expected) >= 0
    with open_run(tmp_path / "n.h5") as fresh:
        for summary in (run.scalar_summary(), fresh.scalar_summary()):
            assert summary.first_nonfinite.tolist() == expected
    run.close()
