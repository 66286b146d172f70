"""A training loss that swings or stalls while the validation loss keeps falling (mixup, CutMix,
heavy augmentation) is a note, not a convergence problem; with a validation loss that does not
fall the same curve stays a warning."""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.signals import Signals
from trainspect.analysis.advisor.val_witness import kept_falling
from trainspect.analysis.vocab import Severity

STEPS = 600
VAL_EVERY = 20


def swinging_train_loss(seed):
    """Fast progress for 40 steps, then a level that wanders between ~0.4 and ~1.2 in slow waves."""
    rng = np.random.default_rng(seed)
    s = np.arange(STEPS)
    level = np.where(s < 40, 2.3 - 1.8 * s / 40, 0.8 + 0.4 * np.sin(2 * np.pi * s / 90 + rng.uniform(0, 6)))
    return s, np.clip(level * rng.lognormal(0, 0.15, STEPS), 1e-3, None)


def val_curve(kind, seed):
    rng = np.random.default_rng(100 + seed)
    s = np.arange(0, STEPS, VAL_EVERY)
    if kind == "falling":       # clean-data loss of a model that keeps learning
        v = 0.1 + 2.2 * np.exp(-s / 80)
    elif kind == "flat":        # stuck with the training loss
        v = np.where(s < 40, 2.3 - 1.5 * s / 40, 0.85)
    else:                       # "dipped": fell, then came most of the way back
        v = np.where(s < 200, 2.3 - 2.0 * s / 200, 0.3 + 1.2 * (s - 200) / 400)
    return s, v * rng.lognormal(0, 0.02, len(s))


def signals(val_kind, seed):
    ts, tv = swinging_train_loss(seed)
    vs, vv = val_curve(val_kind, seed)
    return Signals(train_loss=("train/loss", ts, tv), val_loss=("val/loss", vs, vv))


def finding(sig, symptom):
    return next((f for f in diagnose_signals(sig) if f.symptom == symptom), None)


@pytest.mark.parametrize("seed", range(4))
def test_swinging_training_loss_with_falling_validation_is_a_note_that_points_at_validation(seed):
    f = finding(signals("falling", seed), "loss_oscillation")
    assert f is not None, "the training curve's swings are still reported"
    assert f.severity is Severity.INFO
    assert "val/loss kept falling" in f.title
    assert f.fixes[0].id == "judge_on_validation"
    fell = f.facts["val_kept_falling"]
    assert fell["to"] < 0.7 * fell["from"]
    assert any(e.series == "val/loss" for e in f.evidence)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("val_kind", ["flat", "dipped"])
def test_same_swings_with_a_validation_loss_that_did_not_keep_falling_stay_a_warning(seed, val_kind):
    f = finding(signals(val_kind, seed), "loss_oscillation")
    assert f is not None and f.severity is Severity.WARNING
    assert "val_kept_falling" not in f.facts
    assert all(x.id != "judge_on_validation" for x in f.fixes)


def test_without_a_validation_loss_the_swings_stay_a_warning():
    ts, tv = swinging_train_loss(0)
    f = finding(Signals(train_loss=("train/loss", ts, tv)), "loss_oscillation")
    assert f is not None and f.severity is Severity.WARNING


def test_kept_falling_needs_enough_points_a_real_fall_and_a_positive_loss():
    s = np.arange(0, 600, 20)
    falling = ("val/loss", s, 0.1 + np.exp(-s / 100))
    assert kept_falling(Signals(val_loss=falling), 100)["to"] < 0.5
    # the stretch judged is the last 3 validation points: too few to say it kept falling
    assert kept_falling(Signals(val_loss=falling), 545) is None
    # a signed loss (an ELBO, a log-likelihood): a relative fall means nothing
    assert kept_falling(Signals(val_loss=("val/loss", s, -1 - np.exp(-s / 100))), 100) is None
    # a loss that fell 20 %: not enough
    assert kept_falling(Signals(val_loss=("val/loss", s, 1.0 - 0.2 * s / s[-1])), 0) is None
    # a NaN validation loss ends the series there (its first stretch only)
    broken = 0.1 + np.exp(-s / 100)
    broken[5:] = np.nan
    assert kept_falling(Signals(val_loss=("val/loss", s, broken)), 100) is None


def test_the_validation_evidence_names_points_on_the_curve():
    """The app and the report mark an evidence's (step, value) pairs on the plotted curve: levels
    (medians of 3) would be dropped there for not lying on it."""
    sig = signals("falling", 0)
    f = finding(sig, "loss_oscillation")
    ev = next(e for e in f.evidence if e.series == "val/loss")
    _, vs, vv = sig.val_loss
    for step, value in zip(ev.steps, ev.values):
        assert value == vv[list(vs).index(step)]
