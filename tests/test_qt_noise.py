"""Offscreen screenshots print no Qt noise; Qt's other warnings still reach stderr."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def test_a_screenshot_prints_no_propagate_size_hints_noise(tmp_path):
    from trainspect.recorder import Recorder

    with Recorder(tmp_path / "run.h5") as rec:
        for step in range(20):
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "open", str(tmp_path / "run.h5"),
                           "--screenshot", str(tmp_path / "shot.png"), "--size", "900x600"],
                          capture_output=True, text=True, check=False, timeout=180, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "propagateSizeHints" not in proc.stderr and (tmp_path / "shot.png").exists()


def test_other_qt_warnings_pass():
    code = ("from trainspect.app.gui.qt_messages import quiet_qt_noise; quiet_qt_noise(); "
            "from PySide6.QtCore import qWarning; qWarning('This plugin does not support propagateSizeHints()'); "
            "qWarning('a real problem')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120, env=ENV)
    assert "a real problem" in proc.stderr and "propagateSizeHints" not in proc.stderr
