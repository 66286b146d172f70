"""A generalisation gap on a validation loss of 5-9 evaluations is a note (trial 18 U11).

A frozen backbone's head: val loss 0.92 -> 1.02 over 8 epochs while the training loss kept
falling (val accuracy 0.62 against 0.97) read "no problems found" with nothing said: the
overfitting rule needs 10 validation points (its warning judges a rise against the evaluations'
noise). Now an info note says the gap; the run still reads "no problems found", and short
validation series that fall, wobble or rise with the training loss say nothing."""
from __future__ import annotations


import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder



def _run(path, train, val, every=40):
    with Recorder(path, name=path.stem) as rec:
        for i, v in enumerate(train):
            rec.log({"train/loss": float(v)}, step=i)
            if (i + 1) % every == 0:
                rec.log({"val/loss": float(val[(i + 1) // every - 1])}, step=i)
    return path


def _overfitting(path):
    with open_run(path) as r:
        found = diagnose(r)
    assert not [f for f in found if f.severity in ("warning", "error")]
    return [f for f in found if f.symptom == "overfitting"]


def _train(rng, end=0.13):
    t = np.arange(320)
    return 1.3 * np.exp(-t / 60) + end + 0.05 * rng.random(320)


@pytest.mark.parametrize("seed", range(3))
def test_a_rising_short_validation_loss_is_a_note(tmp_path, seed):
    rng = np.random.default_rng(seed)
    val = np.array([0.923, 0.943, 0.991, 1.013, 1.012, 1.015, 1.016, 1.016]) + rng.normal(0, 0.002, 8)
    got = _overfitting(_run(tmp_path / "gap.h5", _train(rng), val))
    assert len(got) == 1 and got[0].severity == "info" and got[0].facts["short_validation"]
    assert "generalisation gap" in got[0].title and "8 evaluations" in got[0].title


@pytest.mark.parametrize("seed", range(3))
def test_short_validation_losses_that_do_not_rise_say_nothing(tmp_path, seed):
    rng = np.random.default_rng(seed)
    curves = {
        "falling": 1.0 * np.exp(-np.arange(8) / 3) + 0.3 + rng.normal(0, 0.01, 8),
        "wobbling": 0.5 + rng.normal(0, 0.02, 8),
        "one late bump": np.array([0.9, 0.7, 0.6, 0.55, 0.52, 0.5, 0.56, 0.5]),
    }
    for name, val in curves.items():
        assert not _overfitting(_run(tmp_path / f"{name}.h5", _train(rng), val)), name
    # rising while the training loss rose too: not a gap (divergence's business)
    rising = np.linspace(0.9, 1.1, 8)
    train = 0.5 + 0.3 * np.arange(320) / 320 + 0.02 * rng.random(320)
    assert not [f for f in diagnose_all(_run(tmp_path / "both.h5", train, rising)) if f.symptom == "overfitting"]


def diagnose_all(path):
    with open_run(path) as r:
        return diagnose(r)
