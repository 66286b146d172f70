"""Shared test setup: Qt renders offscreen, app settings go to a temporary file, and the advisor's
scenario runs are recorded once per session and shared (tests/scenario_runs.py)."""
import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def scenario_runs(tmp_path_factory):
    """Scenario run files by (name, seed, threads), recorded on first use in parallel processes."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from tests.scenario_runs import ScenarioRuns, source_digest
    cache = os.environ.get("TRAINSPECT_SCENARIO_CACHE")
    directory = Path(cache) / source_digest() if cache else tmp_path_factory.mktemp("scenario_runs")
    return ScenarioRuns(directory)


@pytest.fixture(params=["native", "numpy"])
def host_path(request, monkeypatch):
    """Run a test of the CPU fast path once with the C extension (recorder/_native.c) and once
    with the numpy code that stands in when it is not built: both must give the same values."""
    from trainspect.recorder import host_stats
    if request.param == "numpy":
        monkeypatch.setattr(host_stats, "_native", None)
    elif host_stats._native is None:
        pytest.skip("the C extension is not built (tests/test_native_build.py says why)")
    return request.param
