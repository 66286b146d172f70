"""A small window, two runs compared, a finding's evidence: what the window shows of them."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, show_panel  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    return (make_run(d / "a.h5", n_steps=600, n_layers=2, name="run-alpha", metrics=("train/loss", "sys/input_std")),
            make_run(d / "b.h5", n_steps=200, n_layers=2, name="run-beta", seed=1,
                     metrics=("train/loss", "sys/input_std")))


def test_an_800x600_window_fits_and_the_advisor_stays_readable(window, qtbot, two_runs):
    open_runs(window, list(two_runs))
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800 and window.height() == 600, timeout=WAIT_MS)
    assert window.minimumSizeHint().width() <= 800
    window.advisor_dock.raise_()          # narrow: the Advisor is a tab beside Runs
    qtbot.waitUntil(lambda: window.advisor_dock.isVisible() and window.advisor_dock.width() >= 200, timeout=WAIT_MS)
    window.grab()
    window.resize(1300, 950)              # wide again: back on the right, beside the plots
    qtbot.waitUntil(lambda: window.runs_dock.isVisible() and window.advisor_dock.isVisible()
                    and window.advisor_dock.x() > window.centralWidget().x(), timeout=WAIT_MS)


def test_readout_names_each_run_wraps_and_says_when_a_run_ended(window, qtbot, two_runs):
    a, b = open_runs(window, list(two_runs))
    curves = [window.scalars.curves[("train/loss", e.key)] for e in (a, b)]
    qtbot.waitUntil(lambda: all(c.n_points >= 200 for c in curves) and curves[0].n_points >= 600, timeout=WAIT_MS)
    assert window.scalars.readout.wordWrap()
    text = window.scalars.show_crosshair(100.0)
    assert "run-alpha" in text and "run-beta" in text
    assert "ended" not in text
    text = window.scalars.show_crosshair(550.0)   # run-beta stopped at step 199
    beta = text[text.index("run-beta"):]
    assert "ended at step 199" in beta
    assert "ended" not in text[text.index("run-alpha"):text.index("run-beta")]


def test_layer_panels_name_the_run_they_show(window, qtbot, two_runs):
    a, b = open_runs(window, list(two_runs))
    for entry in (a, b):
        window.runs.set_current(entry)
        for panel in (window.heatmap, window.distributions):
            show_panel(window, qtbot, panel)
            assert entry.name in panel.run_label.text() and entry.color in panel.run_label.text()
            assert (b if entry is a else a).name not in panel.run_label.text()


def test_a_finding_plots_the_series_its_evidence_names(window, qtbot, two_runs):
    a, _ = open_runs(window, list(two_runs))
    window.runs.set_current(a)
    window.advisor.wait()
    window.view.set_metrics(["train/loss"])
    finding = Finding(symptom="unnormalized_inputs", severity="warning", title="Inputs are not normalized",
                      first_step=10, last_step=20,
                      evidence=[Evidence(series="sys/input_std", text="input std 40", steps=[10], values=[40.0]),
                                Evidence(series="sys/not_logged", text="nothing", steps=[10], values=[1.0])])
    window.advisor.set_findings([finding], "1 finding")
    window.advisor.activate(0)
    assert window.view.metrics == ["train/loss", "sys/input_std"]
    assert "sys/input_std" in window.scalars.plots
