"""What slow_convergence advises when a loss falls faster at the end than before: a model leaving
a plateau (word_language_model's LSTM past its unigram level), not an LR too small. It said
"raise the learning rate 10x" (confirm: "re-run with LR x10"), which blew the run up."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _slow(path, seed, loss_at):
    rng = np.random.default_rng(seed)
    with Recorder(path) as rec:
        for step in range(400):
            rec.log({"loss": float(loss_at(step) * np.exp(0.02 * rng.standard_normal())), "lr": 20.0})
    return {f.symptom: f for f in diagnose(path)}["slow_convergence"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_descent_that_speeds_up_at_the_end_is_told_to_train_longer_only(tmp_path, seed):
    f = _slow(tmp_path / "r.h5", seed, lambda s: 5.0 - 0.5 * s / 400 - 1.5 * max(0.0, (s - 250) / 150) ** 2)
    assert f.facts["speedup"] >= 1.5
    assert "lr_too_low" not in [c.id for c in f.causes] and "x10" not in (f.confirm or "")
    assert [x.id for x in f.fixes] == ["train_longer"]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_steady_descent_keeps_the_lr_question(tmp_path, seed):
    f = _slow(tmp_path / "r.h5", seed, lambda s: 5.0 - 2.0 * s / 400)
    assert f.facts["speedup"] < 1.5 and f.causes[0].id == "lr_too_low"
