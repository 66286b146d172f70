"""``trainspect demo``: end to end in a subprocess, as a user on a machine without a display runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

REPO = Path(__file__).resolve().parents[1]


def headless_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def test_headless_demo_trains_names_the_problem_and_writes_run_and_screenshot(tmp_path):
    out = tmp_path / "demo out"
    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "demo", "--headless", "--steps", "150", "--out", str(out)],
                          cwd=tmp_path, env=headless_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "==> the advisor names the problem -- likely cause: lr too high" in text
    assert "WARN  [" in text                                   # the finding itself, with its evidence
    run_file, shot = out / "demo-lr-too-high.h5", out / "demo-lr-too-high.png"
    assert f"run file:   {run_file}" in text and f"screenshot: {shot}" in text

    from trainspect.analysis import diagnose, open_run

    with open_run(run_file) as run:
        assert run.status().describe() == "finished at step 149"
        assert len(run.scalar("train/loss")) == 150
        assert any(f.causes and f.causes[0].id == "lr_too_high" and f.severity != "info" for f in diagnose(run))

    from PySide6.QtGui import QImage

    img = QImage(str(shot))
    assert (img.width(), img.height()) == (1600, 1000)
    small = img.scaled(160, 100)
    colours = {small.pixel(x, y) for x in range(small.width()) for y in range(small.height())}
    assert len(colours) > 50, "the screenshot looks blank"


def test_unknown_scenario_lists_the_choices(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "demo", "--headless", "--scenario", "nope",
                           "--out", str(tmp_path)], cwd=tmp_path, env=headless_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown scenario 'nope'" in proc.stderr and "lr-too-high" in proc.stderr and "healthy" in proc.stderr


@pytest.mark.parametrize("size", ["abc", "10x10"])
def test_a_bad_size_is_refused_before_training(tmp_path, size):
    """--size was checked only after the training, as 'trainspect open:', leaving a run behind."""
    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "demo", "--headless", "--size", size,
                           "--out", str(tmp_path / "out")], cwd=tmp_path, env=headless_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("trainspect demo: --size")
    assert not (tmp_path / "out").exists()


def test_display_detection(monkeypatch):
    from trainspect.app.commands.demo import has_display

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    if sys.platform.startswith("linux"):
        assert not has_display()
        monkeypatch.setenv("DISPLAY", ":0")
        assert has_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not has_display()


def test_display_that_qt_cannot_open_is_detected_without_aborting(monkeypatch):
    """Qt aborts the process on an unusable display; the demo probes first and goes headless.

    What Qt names depends on the machine: with the X libraries installed, the display it cannot
    reach; without them (a bare box), the xcb library it cannot load. Either must come back as
    a message instead of an abort."""
    from trainspect.app.commands.demo import display_problem

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":87")          # no X server there
    problem = display_problem()
    assert problem and (":87" in problem or "xcb" in problem), problem
    # a platform plugin that exists nowhere: Qt aborts the same way on every machine
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    problem = display_problem()
    assert problem and "no-such-platform" in problem, problem
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem() is None
