"""Metric names longer than the run file's name width are kept, shortened, never dropped.

A 67-byte HF module path (``train/layer_outputs/model.encoder.layers.11.self_attn.out_proj/mean``)
or 22 CJK characters were over the old 64-byte limit: the value was skipped with a warning that
quoted the whole name (5,000 characters for a 5,000-character name). Names now take up to 128
bytes; a longer one is stored as its start and end around a hash of the whole, which a resumed
run maps back to the same series. A file written with 64-byte names keeps its width on resume.
"""
import warnings

import numpy as np
import pytest

from trainspect import Recorder
from trainspect.analysis import open_run
from trainspect.recorder import format as fmt
from trainspect.recorder.warning import RecorderWarning

HF = "train/layer_outputs/model.encoder.layers.11.self_attn.out_proj/mean"    # 67 bytes
CJK = "训练损失" * 10                                                           # 120 bytes
HUGE = "val/" + "x" * 5000


def _log(path, steps, names, resume=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, resume=resume) as rec:
            for s in steps:
                rec.log({n: float(s) for n in names}, step=s)
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


def test_names_up_to_128_bytes_are_stored_whole(tmp_path):
    msgs = _log(tmp_path / "r.h5", range(3), [HF, CJK])
    assert msgs == []
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalar_names() == [HF, CJK]
        assert run.scalar(HF).values.tolist() == [0.0, 1.0, 2.0]


def test_a_longer_name_is_kept_shortened_with_one_short_warning(tmp_path):
    msgs = _log(tmp_path / "r.h5", range(3), [HUGE, "loss"])
    assert len(msgs) == 1 and "longer than the run file's 128 bytes" in msgs[0] and "(5004)" in msgs[0]
    assert len(msgs[0]) < 700                     # not the 5,000 characters of the name
    with open_run(tmp_path / "r.h5") as run:
        stored = [n for n in run.scalar_names() if n != "loss"]
        assert len(stored) == 1 and len(stored[0].encode()) <= 128
        assert stored[0].startswith("val/xxx") and stored[0].endswith("x" * 40) and "~" in stored[0]
        assert run.scalar(stored[0]).values.tolist() == [0.0, 1.0, 2.0]


def test_a_resumed_run_adds_to_the_shortened_series(tmp_path):
    path = tmp_path / "r.h5"
    _log(path, range(3), [HUGE, HF])
    _log(path, range(3, 5), [HUGE, HF], resume=True)
    with open_run(path) as run:
        names = run.scalar_names()
        assert len(names) == 2
        assert [run.scalar(n).steps.tolist() for n in names] == [[0, 1, 2, 3, 4]] * 2


def test_a_file_written_with_64_byte_names_keeps_them_on_resume(tmp_path, monkeypatch):
    path = tmp_path / "old.h5"
    monkeypatch.setattr(fmt, "TAG_LEN", 64)
    _log(path, range(2), ["loss"])
    monkeypatch.setattr(fmt, "TAG_LEN", 128)
    msgs = _log(path, range(2, 4), ["loss", HF], resume=True)
    assert any("longer than the run file's 64 bytes" in m for m in msgs)
    with open_run(path) as run:
        names = run.scalar_names()
        assert names[0] == "loss" and len(names) == 2 and len(names[1].encode()) <= 64
        assert names[1].startswith("train/") and names[1].endswith("out_proj/mean")
        assert run.scalar("loss").steps.tolist() == [0, 1, 2, 3]
        assert np.isfinite(run.scalar(names[1]).values).all()


def test_strict_mode_keeps_a_long_name_too(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Recorder(tmp_path / "s.h5", strict=True) as rec:
            rec.log({HUGE: 1.0}, step=0)
    with open_run(tmp_path / "s.h5") as run:
        assert len(run.scalar_names()) == 1
