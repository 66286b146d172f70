"""A legal file name of 242-255 bytes was refused ("File name too long") because the lock
sidecar and the temporary build name add bytes to it (attack round 4, B8)."""
from __future__ import annotations

import pytest

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.format import lock_path, sidecar_name


@pytest.mark.parametrize("name", ["a" * 250 + ".h5", "é" * 124 + ".h5", "b" * 240 + ".h5"])
def test_a_long_legal_name_records(tmp_path, name):
    path = tmp_path / name
    with Recorder(path) as rec:
        assert len(lock_path(path).name.encode()) <= 255
        for step in range(5):
            rec.log({"loss": 1.0 / (step + 1)}, step=step)
    with open_run(path) as run:
        assert len(run.scalar("loss")) == 5


def test_sidecar_names_are_unchanged_for_ordinary_names_and_distinct_for_long_ones():
    assert sidecar_name("exp1.h5", ".lock") == ".exp1.h5.lock"
    a, b = "x" * 250 + "1.h5", "x" * 250 + "2.h5"
    assert sidecar_name(a, ".lock") != sidecar_name(b, ".lock")
    assert all(len(sidecar_name(n, ".12345.new").encode()) <= 255 for n in (a, b))


def test_sidecars_of_undecodable_and_long_undecodable_names():
    """A file name with bytes that are no UTF-8 (os.fsdecode's surrogates) got a traceback."""
    import os

    for name in (os.fsdecode(b"run_\xff.h5"), os.fsdecode(b"\xff" * 250 + b".h5")):
        side = sidecar_name(name, ".lock")
        assert len(os.fsencode(side)) <= 255 and side.startswith(".")
