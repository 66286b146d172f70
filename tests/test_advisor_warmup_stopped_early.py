"""A warm-up that never finished says what to do when the run was stopped early on purpose (trial 14,
M5): the finding is for a warm-up longer than the run or a per-update schedule stepped per epoch, but
a run cut short by hand ends inside its warm-up too. An LR of exactly 0 for many steps is a bug either
way and gets no such word."""
from __future__ import annotations

from tests.test_advisor_warmup_unfinished import EPOCH, _train, warmup
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _finding(path, lr_at):
    with Recorder(path) as rec:
        _train(rec, 0, lr_at)
    return next(f for f in diagnose(path) if f.symptom == "warmup_unfinished")


def test_a_warmup_cut_short_mentions_a_run_stopped_on_purpose(tmp_path):
    f = _finding(tmp_path / "long.h5", lambda step: warmup(step + 1, over=3000))
    assert any("stopped on purpose" in e.text for e in f.evidence)


def test_an_lr_of_zero_for_an_epoch_does_not(tmp_path):
    f = _finding(tmp_path / "epoch.h5", lambda step: warmup(step // EPOCH))
    assert f.facts["zero_steps"] == EPOCH
    assert not any("stopped on purpose" in e.text for e in f.evidence)
