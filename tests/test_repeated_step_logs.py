"""Several values of one metric at one step (trial 18 U9): a loss logged inside an LBFGS closure
is 20 values a step (line-search evaluations included), stacked on one step silently; the
advisor judged the 60 rows of a 3-step run as a curve. Now log() warns once, naming the metric
and the likely cause; the loss-curve rules judge the last value of each step; "not checked" says
a loss of 60 points at 3 steps is too short a curve."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor import coverage
from trainspect.analysis.advisor.signals import extract, last_per_step
from trainspect.recorder import Recorder
from trainspect.recorder.warning import RecorderWarning


def _repeated(w):
    return [x for x in w if issubclass(x.category, RecorderWarning) and "times at step" in str(x.message)]


def test_a_metric_logged_many_times_at_one_step_warns_once(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "a.h5") as rec:
            for step in range(3):
                for _ in range(20):                      # closure evaluations, implicit step
                    rec.log({"train/loss": 1.0})
                rec.log({"closures": 20.0})
                rec.set_step(step + 1)
            for step in range(3, 6):
                for _ in range(20):                      # explicit step
                    rec.log({"train/loss": 1.0, "other": 2.0}, step=step)
    got = _repeated(w)
    assert len(got) == 2, [str(x.message) for x in got]       # once per name, not per step or call
    text = " ".join(str(x.message) for x in got)
    assert "'train/loss'" in text and "'other'" in text and "LBFGS closure" in text
    assert got[0].filename == __file__                          # points at the user's log() call


def test_no_warning_for_separate_calls_or_three_values_a_step(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "b.h5") as rec:
            for step in range(50):
                for k in range(12):                     # twelve names, one call each, at one step
                    rec.log({f"norm/{k}": 1.0}, step=step)
                for _ in range(3):                      # three values of one name: allowed
                    rec.log({"train/loss": 1.0}, step=step)
    assert not _repeated(w)


def test_last_per_step():
    s, v = last_per_step(np.array([0, 0, 0, 1, 1, 2]), np.array([5., 6., 7., 8., 9., 10.]))
    assert s.tolist() == [0, 1, 2] and v.tolist() == [7., 9., 10.]
    s, v = last_per_step(np.array([0, 1, 2, 1, 2, 3]), np.array([1., 2., 3., 4., 5., 6.]))   # resumed at 1
    assert s.tolist() == [0, 1, 2, 3] and v.tolist() == [1., 4., 5., 6.]
    s, v = last_per_step(np.zeros(5, int), np.arange(5.))          # all at one step: kept
    assert len(s) == 5


@pytest.mark.parametrize("seed", range(3))
def test_the_curve_rules_judge_the_last_value_of_each_step(tmp_path, seed):
    """40 LBFGS steps, 20 closure evaluations each: the step's start (the last step's loss), line-search
    probes far above it, then the step's own loss. Judged as 800 points it read "loss_blowup"; per step
    it falls cleanly."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "lbfgs.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecorderWarning)
        with Recorder(path) as rec:
            prev = 2.05
            for step in range(40):
                level = 2.0 * np.exp(-step / 8) + 0.05
                for v in [prev, *(level * rng.uniform(2, 20, 18)), level]:
                    rec.log({"train/loss": float(v)}, step=step)
                prev = level
    with open_run(path) as r:
        sig = extract(r)
        assert len(sig.train_loss[1]) == 40
        assert not [f.title for f in diagnose(r) if f.severity in ("warning", "error")]


def test_not_checked_says_points_at_too_few_steps(tmp_path):
    path = tmp_path / "short.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecorderWarning)
        with Recorder(path) as rec:
            for step in range(3):
                for i in range(20):
                    rec.log({"train/loss": 1.0 / (1 + i + 20 * step)}, step=step)
    with open_run(path) as r:
        text = " ".join(coverage(r).lines())
    assert "60 points at only 3 steps" in text and "optimizer.step(closure)" in text
