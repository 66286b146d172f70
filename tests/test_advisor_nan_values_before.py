"""The NaN finding's "values before" name their steps: a series recorded every 5 steps read "the
5 values before" for steps 125-145 of a NaN at 150, and the report circled steps nobody named."""
from __future__ import annotations

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def test_the_values_before_a_nan_name_their_steps(tmp_path):
    with Recorder(tmp_path / "r.h5") as rec:
        for step in range(0, 200, 5):
            rec.log({"train/loss": float("nan") if step >= 150 else 2.0 - step / 200}, step=step)
    f = next(f for f in diagnose(tmp_path / "r.h5") if f.symptom == "nan_inf")
    text = next(ev.text for ev in f.evidence if ev.series == "train/loss")
    assert "the last 5 recorded before it, steps 125–145: " in text, text
