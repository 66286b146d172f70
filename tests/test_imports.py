"""Import direction app -> analysis -> recorder.format, checked on the source and in fresh processes."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QT = {"PySide6", "pyqtgraph", "PyQt5", "PyQt6", "shiboken6"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports (anywhere in it, lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(REPO).parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            # `from recorder import format` imports the submodule recorder.format;
            # `from recorder.format import RunFileError` imports recorder.format.
            subs = [f"{mod}.{a.name}" for a in node.names if is_repo_module(f"{mod}.{a.name}")]
            names.update(subs if subs else [mod])
    return names


def is_repo_module(name: str) -> bool:
    p = REPO.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_recorder_sources_import_no_qt_analysis_or_app():
    for path in sources("recorder"):
        bad = top(imported_modules(path)) & (QT | {"analysis", "app"})
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_recorder_format_and_package_import_no_torch_at_module_level():
    for name in ("__init__.py", "format.py", "h5file.py", "metadata.py", "writer_thread.py", "recorder.py"):
        path = REPO / "recorder" / name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:   # module level only: torch must be imported lazily
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] == "torch" for m in mods), f"recorder/{name} imports torch at import time"


def test_analysis_sources_import_only_recorder_format():
    for path in sources("analysis"):
        names = imported_modules(path)
        bad = top(names) & (QT | {"torch", "app"})
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"
        from_recorder = {n for n in names if n.split(".")[0] == "recorder"}
        assert from_recorder <= {"recorder.format"}, f"{path.relative_to(REPO)} imports {sorted(from_recorder)}"


def test_app_sources_import_no_h5py_torch_or_recorder_internals():
    for path in sources("app"):
        names = imported_modules(path)
        bad = top(names) & {"h5py", "torch"}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"
        rec = {n for n in names if n.split(".")[0] == "recorder" and n != "recorder.format"}
        assert not rec, f"{path.relative_to(REPO)} imports {sorted(rec)} (app goes through analysis)"


def run_python(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_import_recorder_does_not_import_torch():
    run_python("import recorder, sys; assert 'torch' not in sys.modules, 'import recorder imported torch'")
    run_python("import recorder.format, sys; assert 'torch' not in sys.modules")
    run_python("from recorder import Recorder; import sys; assert 'torch' not in sys.modules, "
               "'Recorder imported torch before watch()'")


def test_recorder_with_torch_imports_no_qt_or_analysis():
    run_python(
        "import recorder.recorder, recorder.instruments, recorder.writer_thread, sys\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {sorted(QT | {'analysis', 'app'})!r}]\n"
        "assert not bad, bad")


def _modules(package: str) -> list[str]:
    return [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in sources(package)]


def test_analysis_imports_no_torch_or_qt_in_a_fresh_process():
    mods = _modules("analysis")
    if not mods:
        pytest.skip("no analysis package yet")
    run_python(
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {sorted(QT | {'torch', 'app'})!r}]\n"
        "assert not bad, bad")


def test_app_imports_no_h5py_or_torch_in_a_fresh_process():
    # Every app module (Qt widgets included: the app extra is installed for tests) must load
    # without torch and without h5py: files are opened only through analysis, which imports
    # h5py when a run is opened.
    mods = _modules("app")
    run_python(
        "import importlib, sys\n"
        "import os; os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py')]\n"
        "assert not bad, bad")
