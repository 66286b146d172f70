"""A resumed run keeps each later session's config (segments/meta) and `info` shows what it
changed. Trial 17, F9: nanoGPT stopped at 150 and resumed read `config: ... resume=False ...
stop_at=150` only: the session that finished the run (resume=True, stop_at=-1) was not visible."""
from __future__ import annotations

import h5py
import numpy as np

from trainspect.analysis import open_run
from trainspect.app.cli import main
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt


def _session(path, config, steps, resume):
    with Recorder(path, config=config, resume=resume) as rec:
        for step in steps:
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)


def _resumed_run(path):
    _session(path, {"lr": 0.1, "stop_at": 150, "resume": False, "opt": {"beta": 0.9}}, range(0, 150), False)
    _session(path, {"lr": 0.1, "stop_at": -1, "resume": True, "opt": {"beta": 0.95}}, range(100, 300), True)


def test_info_shows_what_a_resumed_session_changed_in_the_config(tmp_path, capsys):
    path = tmp_path / "gpt.h5"
    _resumed_run(path)
    with open_run(path) as run:
        sessions = run.segments()
        assert sessions[0]["config"]["stop_at"] == 150
        assert sessions[1]["config"] == {"lr": 0.1, "stop_at": -1, "resume": True, "opt": {"beta": 0.95}}
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    resumed = next(line for line in out.splitlines() if line.startswith("resumed:"))
    assert "stop_at=-1 (was 150)" in resumed and "resume=True (was False)" in resumed
    assert "opt.beta=0.95 (was 0.9)" in resumed and "lr=" not in resumed     # unchanged keys are not repeated
    assert main(["info", str(path), "--config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "stop_at=150" in lines                                            # the first session's, as before
    at = lines.index("# session 2 (resumed from step 100) changed:")
    assert set(lines[at + 1:]) == {"stop_at=-1", "resume=True", "opt.beta=0.95"}


def test_a_third_session_is_compared_with_the_second(tmp_path, capsys):
    path = tmp_path / "gpt.h5"
    _resumed_run(path)
    _session(path, {"lr": 0.05, "stop_at": -1, "resume": True, "opt": {"beta": 0.95}}, range(300, 310), True)
    assert main(["info", str(path)]) == 0
    resumed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resumed:")]
    assert len(resumed) == 2
    assert resumed[1].startswith("resumed:    session 3") and resumed[1].endswith("; config: lr=0.05 (was 0.1)")


def test_a_run_resumed_by_an_older_trainspect_or_with_damaged_session_text_still_reads(tmp_path, capsys):
    path = tmp_path / "old.h5"
    _resumed_run(path)
    with h5py.File(path, "r+") as f:     # as an older writer left it: no segments/meta
        del f[fmt.SEGMENT_META]
    with open_run(path) as run:
        assert run.segments()[1]["config"] is None
    assert main(["info", str(path)]) == 0
    resumed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("resumed:"))
    assert "config:" not in resumed
    damaged = tmp_path / "damaged.h5"
    _resumed_run(damaged)
    with h5py.File(damaged, "r+") as f:
        f[fmt.SEGMENT_META][...] = np.frombuffer(b"\xff" * f[fmt.SEGMENT_META].shape[0], np.uint8)
    assert main(["info", str(damaged)]) == 0
    assert "resumed:    session 2" in capsys.readouterr().out


def test_resuming_a_file_resumed_before_the_session_text_existed_keeps_the_sessions_in_line(tmp_path):
    path = tmp_path / "old.h5"
    _resumed_run(path)
    with h5py.File(path, "r+") as f:
        del f[fmt.SEGMENT_META]
    _session(path, {"lr": 0.01}, range(300, 310), True)
    with open_run(path) as run:
        configs = [s["config"] for s in run.segments()]
    assert configs[1] is None and configs[2] == {"lr": 0.01}
