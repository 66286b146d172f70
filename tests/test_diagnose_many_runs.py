"""`trainspect diagnose` of several runs or a directory (trial 18 U10): `diagnose a.h5 b.h5` was
"unrecognized arguments", `diagnose runs/` "is a directory, not a run file", while info, open and
report take several. Each run's findings print under a heading, the exit code is the worst, and
`--json` prints a list (one run: its object alone, as before); a distributed run's rank files
fold to rank 0."""
from __future__ import annotations

import json

import numpy as np

from rank_runs import write_rank_files
from trainspect.app.cli import main
from trainspect.recorder import Recorder


def _run(path, values):
    with Recorder(path, name=path.stem) as rec:
        for i, v in enumerate(values):
            rec.log({"train/loss": float(v)}, step=i)
    return path


def _healthy(path, seed=0):
    rng = np.random.default_rng(seed)
    return _run(path, 2.0 * np.exp(-np.arange(200) / 40) + 0.05 + 0.02 * rng.random(200))


def _stuck(path):
    return _run(path, np.full(200, 2.3))     # no progress: a warning


def test_several_runs_each_under_a_heading_worst_exit_code(tmp_path, capsys):
    ok, bad = _healthy(tmp_path / "ok.h5"), _stuck(tmp_path / "bad.h5")
    assert main(["diagnose", str(ok)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(ok), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"== {ok} ==" in out and f"== {bad} ==" in out
    assert out.index("no problems found") < out.index(f"== {bad} ==") < out.index("[no_progress]")
    unreadable = tmp_path / "notes.h5"
    unreadable.write_text("not hdf5")
    assert main(["diagnose", str(ok), str(unreadable)]) == 2        # the worst code, the readable run still printed
    cap = capsys.readouterr()
    assert "no problems found" in cap.out and "notes.h5" in cap.err


def test_a_directory_stands_for_its_runs(tmp_path, capsys):
    _healthy(tmp_path / "a.h5")
    _stuck(tmp_path / "b.h5")
    assert main(["diagnose", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "a.h5 ==" in out and "b.h5 ==" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["diagnose", str(empty)]) == 2
    assert "no run files" in capsys.readouterr().err


def test_json_one_run_is_an_object_several_a_list(tmp_path, capsys):
    ok, bad = _healthy(tmp_path / "ok.h5"), _stuck(tmp_path / "bad.h5")
    assert main(["diagnose", str(ok), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert isinstance(one, dict) and one["run"] == "ok"
    assert main(["diagnose", str(ok), str(bad), "--json"]) == 1
    many = json.loads(capsys.readouterr().out)
    assert [d["run"] for d in many] == ["ok", "bad"]
    assert many[1]["findings"][0]["symptom"] == "no_progress"


def test_rank_files_fold_to_rank_0(tmp_path, capsys):
    rng = np.random.default_rng(0)
    per_rank = [{"train/loss": 2.0 * np.exp(-np.arange(120) / 30) + 0.1 * rng.random(120)} for _ in range(2)]
    rank0, rank1 = write_rank_files(tmp_path / "ddp.h5", per_rank)
    main(["diagnose", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, dict) and doc["path"] == str(rank0)      # one run: rank 0, which reads rank 1
    assert set(doc["ranks"]["read"]) == {"0", "1"}
