"""Shared test setup: Qt renders offscreen and app settings go to a temporary file."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _temporary_app_settings(tmp_path_factory, monkeypatch):
    # The app reads TRAINSPECT_SETTINGS (an INI path); never touch the user's real settings.
    monkeypatch.setenv("TRAINSPECT_SETTINGS", str(tmp_path_factory.mktemp("settings") / "trainspect.ini"))


@pytest.fixture
def window(qtbot):
    """The real main window, shown offscreen at a fixed size, with temporary settings."""
    from trainspect.app.gui.main_window import MainWindow
    from trainspect.app.gui.settings import make_settings

    w = MainWindow(settings=make_settings())
    qtbot.addWidget(w)
    w.resize(1300, 950)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
