"""Qt's warnings that say nothing to a user of trainspect are not printed.

Every offscreen screenshot (`trainspect demo --headless`, `open --screenshot`) printed "This
plugin does not support propagateSizeHints()" twice: the offscreen platform cannot resize a
window to its layout's hint, which a rendered PNG does not need. Other messages pass on.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import qInstallMessageHandler

NOISE = ("This plugin does not support propagateSizeHints()",)
_installed = False


def quiet_qt_noise() -> None:
    """Install the filter once (before or after a QApplication exists)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = None

    def handler(mode, context, message):
        if message in NOISE:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            sys.stderr.write(message + "\n")

    previous = qInstallMessageHandler(handler)
