"""`trainspect open` where Qt cannot open a window: one message and exit 2, not Qt's abort.

Without a display (an ssh session to a training box), or with Qt's X libraries missing, Qt
aborted the process (SIGABRT, rc 134) with "Reinstalling the application may fix this
problem". Each case is set up so that it fails the same way whether or not this machine has
the X libraries.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures_runs import make_run

pytest.importorskip("PySide6")

NO_DISPLAY_VARS = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")


@pytest.fixture
def run_path(tmp_path):
    return make_run(tmp_path / "run.h5", n_steps=50, n_layers=2)


def open_cmd(args, tmp_path, **env_vars) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in NO_DISPLAY_VARS}
    return subprocess.run([sys.executable, "-m", "trainspect.app.cli", "open", *args], cwd=tmp_path,
                          env={**env, **env_vars}, capture_output=True, text=True, timeout=180)


def assert_says_why_and_what_else(proc, why: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr
    assert err.startswith("trainspect open: cannot open a window: ") and why in err, err
    assert "trainspect tail RUN" in err and "--screenshot out.png" in err and "trainspect report RUN" in err, err
    assert "Reinstalling" not in err and "Traceback" not in err, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux needs DISPLAY for a window")
def test_no_display_is_said_with_the_alternatives(tmp_path, run_path):
    proc = open_cmd([str(run_path)], tmp_path)
    assert_says_why_and_what_else(proc, "no display (DISPLAY and WAYLAND_DISPLAY are not set)")


def test_a_platform_qt_cannot_start_is_said_with_the_alternatives(tmp_path, run_path):
    # Qt aborts on a platform plugin it cannot load the same way on every machine.
    proc = open_cmd([str(run_path)], tmp_path, QT_QPA_PLATFORM="no-such-platform")
    assert_says_why_and_what_else(proc, 'Could not find the Qt platform plugin "no-such-platform"')


def test_a_screenshot_needs_no_display(tmp_path, run_path):
    proc = open_cmd([str(run_path), "--screenshot", "shot.png", "--size", "800x600"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "shot.png").stat().st_size > 0


def test_a_symlink_loop_is_named_beside_the_runs_that_open(tmp_path, run_path):
    (tmp_path / "loop1.h5").symlink_to("loop2.h5")
    (tmp_path / "loop2.h5").symlink_to("loop1.h5")
    proc = open_cmd(["loop1.h5", str(run_path), "--screenshot", "shot.png", "--size", "800x600"], tmp_path)
    assert "loop1.h5: Too many levels of symbolic links" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "shot.png").stat().st_size > 0


@pytest.mark.parametrize("qt_says, hint", [
    # a bare box: the xcb plugin is there, its libraries are not
    ("qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin.\n"
     'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.\n', True),
    # the libraries are there, no X server answers
    ("qt.qpa.xcb: could not connect to display :87\n"
     'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.\n', False),
    ('qt.qpa.plugin: Could not find the Qt platform plugin "nope" in ""\n'
     "Available platform plugins are: minimal, offscreen, xcb.\n", False),
])
def test_the_packages_to_install_are_named_only_where_libraries_are_missing(monkeypatch, qt_says, hint):
    from trainspect.app import display

    failed = subprocess.CompletedProcess([], -6, "", qt_says + "This application failed to start because no Qt "
                                         "platform plugin could be initialized. Reinstalling the application may fix this problem.\n")
    monkeypatch.setattr(display.subprocess, "run", lambda *a, **k: failed)
    problem = display.display_problem()
    assert ("apt-get install libxcb-cursor0" in problem) == hint, problem
    assert "Reinstalling" not in problem and "qt.qpa" not in problem, problem
