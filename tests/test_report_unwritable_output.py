"""`trainspect report` to a path it cannot write fails at once, before reading and drawing
(it drew every plot of every run, then failed on the write)."""
from __future__ import annotations

import pytest
from trainspect.app.cli import main
from trainspect.recorder import Recorder


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        for step in range(30):
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    return path


@pytest.mark.parametrize("target, said", [("missing/report.html", "its folder does not exist"),
                                          ("folder.html", "it is a folder"),
                                          ("a_file/report.html", "its folder does not exist")])
def test_unwritable_output_fails_before_any_work(run, tmp_path, capsys, target, said):
    (tmp_path / "folder.html").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["report", str(run), "-o", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert said in err and "cannot write" in err
    assert "[1/" not in err            # no progress: nothing was read or drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder.html", "run.h5"]   # no probe left
