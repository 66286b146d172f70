"""Layering and the single `trainspect` namespace: declared contracts plus fresh-process checks.

The contracts themselves live in pyproject.toml (`[tool.importlinter]`) and say what the README's
architecture section says: app -> analysis -> recorder.format, no torch outside the recorder,
no Qt outside the app, no h5py in the app.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QT = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "shiboken6")


def run_python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_layer_contracts_hold():
    lint = shutil.which("lint-imports") or pytest.fail("import-linter is part of the test extra")
    proc = subprocess.run([lint, str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def test_every_source_folder_is_an_installed_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    on_disk = {"trainspect"} | {
        "trainspect." + ".".join(p.parent.relative_to(REPO).parts)
        for top in ("recorder", "analysis", "app", "integrations") for p in (REPO / top).rglob("__init__.py")}
    assert declared == on_disk


def _modules(package: str) -> list[str]:
    root = REPO / package
    return ["trainspect." + ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            for p in sorted(root.rglob("*.py"))]


def test_import_trainspect_and_recorder_do_not_import_torch():
    run_python("import trainspect, sys; assert 'torch' not in sys.modules")
    run_python("from trainspect import Recorder; import sys; assert 'torch' not in sys.modules, "
               "'Recorder imported torch before watch()'")
    run_python("import trainspect.recorder.format, sys; assert 'torch' not in sys.modules")


def test_recorder_with_torch_imports_no_qt_or_analysis():
    run_python(
        "import trainspect.recorder.recorder, trainspect.recorder.instruments, sys\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT!r} "
        "or m.startswith(('trainspect.analysis', 'trainspect.app'))]\n"
        "assert not bad, bad")


def test_analysis_imports_no_torch_or_qt_in_a_fresh_process():
    run_python(
        "import importlib, sys\n"
        f"for m in {_modules('analysis')!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT + ('torch',)!r} "
        "or m.startswith('trainspect.app')]\n"
        "assert not bad, bad")


def test_app_imports_no_h5py_or_torch_in_a_fresh_process():
    # Every app module (Qt widgets included: the app extra is installed for tests) loads without
    # torch and h5py: files are opened only through analysis, which imports h5py on open.
    run_python(
        "import importlib, sys, os\n"
        "os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
        f"for m in {_modules('app')!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py')]\n"
        "assert not bad, bad")


def test_app_outside_gui_works_without_qt():
    # The CLI, reports, lod and layer_data must load where Qt cannot: block it outright.
    plain = [m for m in _modules("app") if not m.startswith("trainspect.app.gui")]
    assert "trainspect.app.cli" in plain and "trainspect.app.report.html" in plain
    run_python(
        "import importlib, sys\n"
        f"for q in {QT!r}: sys.modules[q] = None\n"
        f"for m in {plain!r}: importlib.import_module(m)\n"
        "from trainspect.app.cli import build_parser\n"
        "build_parser()\n")


def test_users_own_recorder_app_and_analysis_modules_break_nothing(tmp_path):
    # Generic names collide with a user's own files; trainspect imports only its namespace.
    for name in ("recorder", "app", "analysis", "format", "findings"):
        (tmp_path / f"{name}.py").write_text("raise ImportError('the user module was imported')\n")
    out = tmp_path / "run.h5"
    run_python(
        "from trainspect import Recorder, open_run, diagnose\n"
        f"with Recorder({str(out)!r}, name='mine') as rec:\n"
        "    rec.log({'train/loss': 1.0}, step=0)\n"
        f"print(open_run({str(out)!r}).name, len(diagnose({str(out)!r})))", cwd=tmp_path)
    exe = Path(sys.executable).with_name("trainspect")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainspect.app.cli"]
    proc = subprocess.run(cmd + ["info", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mine" in proc.stdout
