"""Shared test setup: Qt renders offscreen, app settings go to a temporary file, and the advisor's
scenario runs are recorded once per session and shared (tests/scenario_runs.py)."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one test worker per core this process may run on (not the
    machine's count: a container or taskset gives fewer), at most 8 (each holds torch and Qt)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


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
    if cache:
        directory = Path(cache) / source_digest()
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        # One folder for every pytest-xdist worker of this session (their temp folders share a
        # parent): the workers split the grid between them (claim files) and read each other's runs.
        directory = tmp_path_factory.getbasetemp().parent / "scenario_runs"
    else:
        directory = tmp_path_factory.mktemp("scenario_runs")
    runs = ScenarioRuns(directory)
    yield runs
    runs.close()


def _uses_scenario_runs(item) -> bool:
    return "scenario_runs" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """Tests of the recorded scenario runs go last (otherwise in their order): the whole grid is
    then recorded in the background while the other tests run (_scenario_grid_in_background)."""
    items.sort(key=_uses_scenario_runs)


@pytest.fixture(scope="session", autouse=True)
def _scenario_grid_in_background(request):
    """When the session runs the scenario suite, start recording its grid (462 runs, ~4 minutes of
    CPU) in one low-priority process at once: the tests before it rarely keep both cores busy."""
    from importlib.util import find_spec
    if not any(_uses_scenario_runs(i) and getattr(i, "module", None) is not None
               and i.module.__name__.endswith("test_advisor_scenarios") for i in request.session.items):
        return
    if find_spec("torch") is None or find_spec("sklearn") is None:     # the scenario tests skip themselves
        return
    from tests.scenario_runs import grid
    from tests.scenarios import SCENARIOS
    request.getfixturevalue("scenario_runs").prefetch(grid(SCENARIOS))


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
