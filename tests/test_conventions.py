"""What users expect of a Python tool and a Unix command (issue 10 part 5): --version, quiet
pipes, exit codes a CI gate can use, a real Recorder signature, lazy names in dir(), run
directories on the command line."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import trainspect
from trainspect.recorder import format as fmt
from trainspect.app.cli import EXIT_BROKEN_PIPE, main

from tests.fixtures_runs import make_run

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "trainspect.app.cli", *args], cwd=ROOT.parent,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"trainspect {trainspect.__version__}"


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path):
    run = make_run(tmp_path / "r.h5", n_steps=50)
    proc = _cli("info", str(run), stdout=subprocess.PIPE)
    proc.stdout.close()     # the only reader is gone (like `| head` after its lines): every write fails
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("status", [fmt.STATUS_CRASHED, fmt.STATUS_RUNNING])
def test_diagnose_fails_a_dead_run(tmp_path, status, capsys):
    # A crashed run, and one still marked running whose writer went away long ago (stale).
    path = make_run(tmp_path / "dead.h5", n_steps=200, status=status)
    if status == fmt.STATUS_RUNNING:
        import h5py

        with h5py.File(path, "r+") as f:   # the writer's last heartbeat, an hour ago
            f[fmt.STATE][fmt.STATE_HEARTBEAT] -= 3600
    from trainspect.analysis import open_run

    with open_run(path) as r:
        assert r.status().state in ("crashed", "stale")
    assert main(["diagnose", str(path)]) == 3
    assert main(["diagnose", "--json", str(path)]) == 3


def test_diagnose_documents_its_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "3 = the run crashed or went stale" in out


def test_recorder_signature_is_the_public_one():
    sig = inspect.signature(trainspect.Recorder)
    names = list(sig.parameters)
    assert names[:3] == ["path", "name", "config"]
    assert {"flush_every", "stats_every", "hist_every", "roles", "strict"} <= set(names)
    assert not [n for n in names if n.startswith("_")]
    assert "args" not in names and "kwargs" not in names
    assert sig.parameters["flush_every"].annotation not in (inspect.Parameter.empty, None)


def test_py_typed_ships_beside_the_package():
    assert (Path(trainspect.__file__).parent / "py.typed").is_file()


def test_dir_lists_lazy_names():
    import trainspect.recorder as rec

    assert "Recorder" in dir(rec)
    assert {"Recorder", "open_run", "diagnose", "Run"} <= set(dir(trainspect))


def test_info_and_diagnose_paths_expand_a_directory(tmp_path, capsys):
    for name in ("b", "a"):
        make_run(tmp_path / f"{name}.h5", n_steps=30)
    (tmp_path / "notes.txt").write_text("not a run")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("run:        a") < out.index("run:        b")
    assert "notes" not in out


def test_info_on_a_directory_without_runs_says_so(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "no run files" in capsys.readouterr().err


def test_open_finds_the_runs_in_a_directory(tmp_path, capsys):
    pytest.importorskip("PySide6")
    for name in ("one", "two"):
        make_run(tmp_path / f"{name}.h5", n_steps=30)
    shot = tmp_path / "shot.png"
    # A directory given as a run file would fail to open (exit 2).
    assert main(["open", str(tmp_path), "--screenshot", str(shot), "--size", "800x600"]) == 0
    assert shot.is_file() and "trainspect open:" not in capsys.readouterr().err


def test_wheel_ships_the_docs_and_py_typed(tmp_path):
    """ADVISOR.md and FORMAT.md are the reference of the rules and the file format: a user who
    installed the wheel must have them. Built from a copy so the source tree stays clean."""
    pytest.importorskip("setuptools")
    import shutil
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests", "benchmarks"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(src), "-w", str(tmp_path / "whl")], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "whl").glob("trainspect-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"trainspect/analysis/ADVISOR.md", "trainspect/recorder/FORMAT.md", "trainspect/py.typed",
            "trainspect/recorder/recorder.py", "trainspect/app/cli.py"} <= names
    assert not [n for n in names if n.split("/")[0] in ("recorder", "analysis", "app")]   # one namespace


def test_run_to_pandas_has_one_column_per_metric_indexed_by_step(tmp_path):
    pd = pytest.importorskip("pandas")
    from trainspect.analysis import open_run

    for seed in (0, 1):
        path = make_run(tmp_path / f"r{seed}.h5", n_steps=120, val_every=10, seed=seed)
        with open_run(path) as run:
            frame = run.to_pandas()
            assert isinstance(frame, pd.DataFrame) and frame.index.name == "step"
            user = [n for n in run.scalar_names() if not fmt.is_sys(n)]
            assert list(frame.columns) == user
            for name in user:
                s = run.scalar(name)
                col = frame[name].dropna()
                assert list(col.index) == list(s.steps)
                assert col.to_numpy().tolist() == s.values.tolist()
            assert len(frame) == 120   # the every-step metric fills every row; val has NaN between
            val = [n for n in user if n.startswith("val")]
            assert val and frame[val[0]].isna().sum() == 120 - len(run.scalar(val[0]))
            assert list(run.to_pandas(names=user[:1]).columns) == user[:1]
