"""log()'s fast path and the batch API log_many() store exactly what the general path would."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repeated_name_sets_with_changing_value_types_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "run.h5"
    expected: dict[str, list] = {}
    kinds = [lambda x: float(x), lambda x: int(x * 10), lambda x: np.float32(x), lambda x: torch.tensor(x),
             lambda x: bool(x > 0)]
    with Recorder(path) as rec:
        for step in range(300):
            names = ["a", "b"] if step % 3 else ["b", "a", "c"]       # two name sets, orders differ
            metrics = {}
            for name in names:
                x = float(rng.standard_normal())
                v = kinds[rng.integers(len(kinds))](x) if rng.random() < 0.2 else x
                metrics[name] = v
                expected.setdefault(name, []).append((step, float(np.float64(np.float32(v)))
                                                      if isinstance(v, (np.floating, torch.Tensor)) else float(v)))
            rec.log(metrics, step=step)
    with open_run(path) as run:
        for name, points in expected.items():
            s = run.scalar(name)
            assert s.steps.tolist() == [p[0] for p in points]
            np.testing.assert_allclose(s.values, [p[1] for p in points], rtol=1e-6)


def test_a_bad_value_in_a_known_name_set_is_skipped_alone(tmp_path):
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        rec.log({"a": 1.0, "b": 2.0}, step=0)
        with pytest.warns(RecorderWarning, match="'b'"):
            rec.log({"a": 3.0, "b": "oops"}, step=1)
        rec.log({"a": 5.0, "b": 6.0}, step=2)
    with open_run(path) as run:
        assert run.scalar("a").values.tolist() == [1.0, 3.0, 5.0]
        assert run.scalar("b").steps.tolist() == [0, 2]


def test_log_many_round_trips_arrays_and_mixes_with_log(tmp_path):
    path = tmp_path / "run.h5"
    n = 10_000
    loss = np.linspace(2.0, 0.1, n)
    acc = np.linspace(0.0, 1.0, n, dtype=np.float32)
    with Recorder(path) as rec:
        rec.log({"train/loss": 9.0}, step=0)
        rec.log_many({"train/loss": loss, "acc": acc}, steps=np.arange(1, n + 1))
        loss[:] = -1.0        # the recorder kept its own copy
        rec.log_many({"lr": [0.1, 0.2, 0.3]})       # steps None: consecutive from rec.step
        rec.log({"train/loss": 7.0})
    with open_run(path) as run:
        s = run.scalar("train/loss")
        assert s.steps.tolist() == list(range(0, n + 1)) + [4]
        np.testing.assert_array_equal(s.values[1:n + 1], np.linspace(2.0, 0.1, n))
        np.testing.assert_array_equal(run.scalar("acc").values, acc.astype(np.float64))
        assert run.scalar("lr").steps.tolist() == [1, 2, 3]


def test_log_many_rejects_bad_input_with_a_warning_and_keeps_the_rest(tmp_path):
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        with pytest.warns(RecorderWarning, match="differ in length"):
            rec.log_many({"a": [1.0, 2.0], "b": [1.0]}, steps=[0, 1])
        with pytest.warns(RecorderWarning, match="steps"):
            rec.log_many({"a": [1.0, 2.0]}, steps=[0.5, 1.5])
        with pytest.warns(RecorderWarning, match="'c'"):
            rec.log_many({"c": ["x", "y"], "d": [3.0, 4.0]}, steps=[5, 6])
    with open_run(path) as run:
        assert "a" not in run.scalar_names()
        assert run.scalar("d").steps.tolist() == [5, 6]
    with Recorder(tmp_path / "strict.h5", strict=True) as rec, pytest.raises(ValueError, match="length"):
        rec.log_many({"a": [1.0, 2.0], "b": [1.0]})
