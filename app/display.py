"""Can Qt open a window here? Asked before the app starts (``trainspect open``, ``trainspect demo``).

Qt aborts the whole process (SIGABRT, "Reinstalling the application may fix this problem")
when its platform plugin cannot start, so the answer comes from a throw-away process.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

# What Qt's X11 (xcb) plugin needs beyond PySide6's wheel on a bare Debian/Ubuntu box (README).
X_PACKAGES = "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
QT_PROBE = "from PySide6.QtWidgets import QApplication; QApplication([])"
QT_CATEGORY = re.compile(r"^qt(\.\w+)+: ")   # "qt.qpa.plugin: " before each of Qt's lines


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return os.environ["QT_QPA_PLATFORM"] not in ("offscreen", "minimal")
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True   # macOS and Windows always have a window system


def display_problem() -> str | None:
    """Why Qt cannot open a window here, or None if it can: Qt's own first lines, and the
    packages to install where its xcb plugin could not load (a reachable display lacking them)."""
    try:
        proc = subprocess.run([sys.executable, "-c", QT_PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    # Qt's own advice ("Reinstalling the application may fix this problem") is wrong here.
    lines = [QT_CATEGORY.sub("", ln) for ln in proc.stderr.splitlines() if ln.strip() and "Reinstalling" not in ln]
    problem = "; ".join(lines[:2]) or f"exit code {proc.returncode}"
    if '"xcb"' in problem and "could not connect" not in problem:   # found, but its libraries are missing
        problem += f" -- on Debian/Ubuntu: apt-get install {X_PACKAGES}"
    return problem


def window_problem() -> str | None:
    """Why the app cannot open a window here (a platform the user chose is tried as it is);
    None if it can."""
    if not os.environ.get("QT_QPA_PLATFORM") and not has_display():
        return "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    return display_problem()
