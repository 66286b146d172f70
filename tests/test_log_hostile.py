"""Hostile log() inputs: one warning, the call's good values kept, training goes on (issue 11
part 3). A fixed list of the inputs the campaign found, then hypothesis-driven ones."""
from __future__ import annotations

import decimal
import fractions
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning


class RaisingFloat:
    def __float__(self):
        raise RuntimeError("no float for you")


class RaisingMapping(dict):
    def __iter__(self):
        raise RuntimeError("cannot iterate")


class RaisingStr(str):
    def encode(self, *args, **kwargs):
        raise RuntimeError("cannot encode")


def _hostile_values():
    return {
        "timedelta": np.timedelta64(5, "s"),
        "datetime": np.datetime64("2020-01-01"),
        "sparse_coo": torch.sparse_coo_tensor([[0]], [1.0], (1,)),
        "sparse_csr": torch.tensor([[1.0]]).to_sparse_csr(),
        "nested": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        "complex": 1 + 2j,
        "complex_tensor": torch.tensor(1 + 1j),
        "huge_int": 10 ** 400,
        "none": None,
        "raising_float": RaisingFloat(),
        "text": "0.5",
        "list": [1.0, 2.0],
        "matrix": torch.ones(2, 2),
        "meta": torch.empty((), device="meta"),
        "object_array": np.array(1.0, dtype=object),
        "huge_longdouble": np.longdouble("1e4000"),
        "decimal_snan": decimal.Decimal("sNaN"),
        "empty_tensor": torch.empty(0),
    }


def test_every_hostile_value_warns_and_the_good_ones_are_kept(tmp_path):
    path = tmp_path / "hostile.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            for step, (name, value) in enumerate(_hostile_values().items()):
                rec.log({"good": float(step), name: value}, step=step)
            rec.log({"good": 100.0, "bool_tensor": torch.tensor(True), "fraction": fractions.Fraction(1, 4),
                     "dict": {"a": 1.0}}, step=100)
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    for name in _hostile_values():
        assert sum(f"metric '{name}'" in m for m in messages) == 1, (name, messages)
    with open_run(path) as r:
        assert r.scalar("good").steps.tolist() == list(range(len(_hostile_values()))) + [100]
        assert set(r.scalar_names()) == {"good", "bool_tensor", "fraction", "dict/a"}   # nested: joined
        assert r.scalar("bool_tensor").values.tolist() == [1.0]
        assert r.scalar("fraction").values.tolist() == [0.25]



def test_nested_dicts_numpy_bools_and_decimals_are_logged(tmp_path):
    """W&B users nest their metrics ({"train": {"loss": x}}): the names join with "/", which the
    metric tree groups and the advisor reads as the training and validation losses."""
    path = tmp_path / "nested.h5"
    deep = {}
    node = deep
    for _ in range(12):          # deeper than anyone logs on purpose; a cycle would be endless
        node["d"] = {}
        node = node["d"]
    node["x"] = 1.0
    cyclic = {"v": 2.0}
    cyclic["self"] = cyclic
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            for step in range(3):
                rec.log({"train": {"loss": 1.0 / (step + 1), "acc": np.bool_(step > 0)},
                         "val": {"loss": torch.tensor(2.0 + step), "extra": {"lr": decimal.Decimal("0.5")}},
                         "deep": deep, "cyc": cyclic, "z": {1: 3.0, "ok": 4.0}, "c": 1 + 2j,
                         "huge": decimal.Decimal("1e400")}, step=step)
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert any("metric 'c': complex value" in m for m in messages), messages
    assert any("metric 'huge'" in m and "overflows float64" in m for m in messages), messages
    assert any("nested more than 8 levels" in m for m in messages), messages
    assert any("metric 'z': nested metric name 1 is not a non-empty str" in m for m in messages), messages
    with open_run(path) as r:
        names = set(r.scalar_names())
        assert {"train/loss", "train/acc", "val/loss", "val/extra/lr", "z/ok", "cyc/v"} <= names
        assert not any(n.startswith("deep") for n in names) and "c" not in names and "huge" not in names
        assert r.scalar("train/loss").values.tolist() == pytest.approx([1.0, 0.5, 1 / 3])
        assert r.scalar("train/acc").values.tolist() == [0.0, 1.0, 1.0]
        assert r.scalar("val/extra/lr").values.tolist() == [0.5] * 3
        assert r.scalar("cyc/v").values.tolist() == [2.0] * 3
        assert r.loss_roles() == {"train": "train/loss", "val": "val/loss"}

def test_undecodable_names_are_recorded_under_a_readable_spelling(tmp_path):
    path = tmp_path / "names.h5"
    name = os.fsdecode(b"loss_\xff")
    with pytest.warns(RecorderWarning, match=r"not valid Unicode .*recorded as 'loss_\\\\xff'"):
        with Recorder(path) as rec:
            for step in range(3):
                rec.log({name: float(step), "\ud800": torch.tensor(1.0)}, step=step)
    with open_run(path) as r:
        assert r.scalar("loss_\\xff").values.tolist() == [0.0, 1.0, 2.0]
        assert len(r.scalar("\\ud800")) == 3
    with Recorder(tmp_path / "strict.h5", strict=True) as rec:
        with pytest.raises(ValueError, match="not valid Unicode"):
            rec.log({name: 1.0}, step=0)


def test_broken_containers_and_names_skip_the_call_with_one_warning(tmp_path):
    path = tmp_path / "broken.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            for step in range(3):
                rec.log(RaisingMapping(a=1.0), step=step)
                rec.log({RaisingStr("x"): 1.0, "good": float(step)}, step=step)
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert sum("RuntimeError: cannot iterate" in m for m in messages) == 1, messages
    assert sum("RuntimeError: cannot encode" in m for m in messages) == 1, messages
    with open_run(path) as r:
        assert r.scalar_names() == ["good"] and r.scalar("good").steps.tolist() == [0, 1, 2]
    with Recorder(tmp_path / "strict.h5", strict=True) as rec:
        with pytest.raises(RuntimeError, match="cannot iterate"):
            rec.log(RaisingMapping(a=1.0), step=0)


# ------------------------------------------------------------------ hypothesis
def _tensors():
    with warnings.catch_warnings():   # torch's notes on sparse invariants and prototype nested tensors
        warnings.simplefilter("ignore")
        return _tensor_list()


def _tensor_list():
    return st.sampled_from([
        torch.tensor(1.5), torch.tensor(True), torch.tensor(3, dtype=torch.int64), torch.tensor(1 + 1j),
        torch.tensor(2.0, dtype=torch.bfloat16), torch.ones(3), torch.empty(0),
        torch.sparse_coo_tensor([[0]], [1.0], (1,)), torch.nested.nested_tensor([torch.ones(1), torch.ones(2)]),
        torch.empty((), device="meta"), torch.tensor(float("nan")), torch.tensor(1.0, requires_grad=True),
    ])


hostile_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.booleans(), st.complex_numbers(), st.none(), st.text(max_size=5), st.binary(max_size=5),
    st.fractions(), st.decimals(allow_nan=True), st.lists(st.floats(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.floats(), max_size=2),
    st.integers(-10 ** 6, 10 ** 6).map(lambda n: np.timedelta64(n, "ms")),
    st.sampled_from([np.float16(1), np.int8(-3), np.uint64(2 ** 64 - 1), np.longdouble("1e4000"), np.bool_(True),
                     np.complex64(1j), np.array(2.0), np.array([1.0, 2.0]), np.array(1, dtype=object)]),
    st.builds(RaisingFloat), _tensors(),
)
hostile_names = st.one_of(
    st.text(max_size=80), st.binary(min_size=1, max_size=12).map(os.fsdecode), st.integers(), st.none(),
    st.just("sys/reserved"), st.text(min_size=60, max_size=70), st.builds(RaisingStr, st.text(min_size=1, max_size=3)),
)
hostile_steps = st.one_of(st.none(), st.integers(-(2 ** 70), 2 ** 70), st.floats(), st.booleans(), st.text(max_size=3),
                          st.sampled_from([np.int64(5), np.uint8(3), torch.tensor(4), torch.tensor(-4), torch.tensor(4.0),
                                           torch.tensor([7]), torch.tensor([1, 2]), torch.tensor(True), 7.0, 2.0 ** 60]))
calls = st.lists(st.tuples(st.dictionaries(hostile_names, hostile_values, max_size=4), hostile_steps),
                 min_size=1, max_size=12)


def _valid_step(step) -> bool:
    """An int in [0, 2**53), also given as a whole float (7.0) or a one-element integer CPU tensor."""
    if isinstance(step, torch.Tensor):
        if step.is_floating_point() or step.dtype == torch.bool or step.numel() != 1:
            return False
        step = int(step.item())
    elif isinstance(step, float):
        if not step.is_integer():
            return False
        step = int(step)
    return step is None or (isinstance(step, (int, np.integer)) and not isinstance(step, bool) and 0 <= step < 2 ** 53)


@settings(max_examples=int(os.environ.get("TRAINSPECT_HYPOTHESIS_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_hostile_log_calls_never_raise_and_keep_the_good_value(batch):
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(folder) / "h.h5"
        expected = []
        with Recorder(path, strict=False) as rec:
            for i, (metrics, step) in enumerate(batch):
                metrics = {k: v for k, v in metrics.items() if k != "sentinel"}
                metrics["sentinel"] = float(i)
                at = rec.step if step is None else step
                rec.log(metrics, step=step)   # must not raise, whatever the input
                if _valid_step(step):
                    expected.append((int(at.item() if isinstance(at, torch.Tensor) else at), float(i)))
        with open_run(path) as r:
            s = r.scalar("sentinel") if "sentinel" in r.scalar_names() else None
            got = list(zip(s.steps.tolist(), s.values.tolist())) if s is not None else []
    assert got == expected   # every call with a usable step kept its good value


def test_nested_names_that_join_into_one_are_named_not_both_recorded(tmp_path):
    """{"a": {"b": {"c": 1}}, "a/b": {"c": 2}} recorded two values of a/b/c at one step, and
    {"a": {"": 1}} a metric named "a/" (a top-level "" is refused)."""
    path = tmp_path / "r.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            rec.log({"a": {"b": {"c": 1.0}}, "a/b": {"c": 2.0, "d": 5.0}, "x": {"": 1.0, "y": 4.0}, "x/y": 3.0},
                    step=1)
            rec.log({"a": {"b": {"c": 6.0}}}, step=2)                 # the next call: no clash
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert any("'a/b/c': given twice in one log() call" in m for m in messages), messages
    assert any("'x/y': given twice in one log() call" in m for m in messages), messages
    assert any("metric 'x': nested metric name '' is not a non-empty str" in m for m in messages), messages
    with open_run(path) as r:
        assert sorted(r.scalar_names()) == ["a/b/c", "a/b/d", "x/y"]
        assert r.scalar("a/b/c").steps.tolist() == [1, 2] and r.scalar("x/y").values.tolist() == [3.0]
