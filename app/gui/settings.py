"""Where the app remembers window layout and recent files (QSettings, INI format).

``TRAINSPECT_SETTINGS=/path/file.ini`` redirects it (tests use a temporary file).
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10
RECENT_KEY = "recent_files"


def make_settings(path=None) -> QSettings:
    path = path or os.environ.get("TRAINSPECT_SETTINGS")
    if path:
        return QSettings(str(path), QSettings.IniFormat)
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "trainspect", "trainspect")


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value(RECENT_KEY, [])
    if isinstance(value, str):  # QSettings returns a bare string for one-element lists
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent(settings: QSettings, path) -> list[str]:
    p = str(Path(path).resolve())
    items = [p] + [r for r in recent_files(settings) if r != p]
    items = items[:MAX_RECENT]
    settings.setValue(RECENT_KEY, items)
    return items


def clear_recent(settings: QSettings) -> None:
    settings.setValue(RECENT_KEY, [])
