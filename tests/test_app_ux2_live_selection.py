"""Live runs: the advisor keeps the user's finding and the demo's verdict keeps up (UX review
trial14, M8).

While a run was tailed, a re-diagnosis that put a new warning above the selected "dead ReLUs"
row, or found one more dead layer, lost the selection (the old key was the symptom with *all*
its layers); and the status bar kept "likely cause ... (seen as: dead ReLUs: 75 % ...)" while the
finding read 86 %. The selection now follows the finding by identity (symptom and first layer),
wherever it moves in the list, with its new numbers; the verdict is rewritten when its words
change."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import Cause, Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402


def dead(pct, layers):
    return Finding(symptom="dead_units", severity="warning", title=f"dead ReLUs: {pct}% of units in {layers[0]}",
                   first_step=50, last_step=100, layers=list(layers),
                   evidence=[Evidence(series="dead_frac", text=f"{pct}% dead", layer=layers[0])],
                   causes=[Cause(id="lr_too_high", confidence=0.6, why="big updates")])


def spike():
    return Finding(symptom="loss_spikes", severity="error", title="loss spiked 40x", first_step=40, last_step=49,
                   evidence=[Evidence(series="train/loss", text="spike")])


def selected_row(panel):
    item = panel.tree.currentItem()
    return panel.tree.indexOfTopLevelItem(item) if item is not None else None


def test_a_rediagnosis_keeps_the_selected_finding(window, qtbot, tmp_path):
    entry, = open_runs(window, [make_run(tmp_path / "live.h5", n_steps=120, n_layers=2)])
    panel = window.advisor
    panel.wait()
    other = Finding(symptom="weight_growth", severity="info", title="weights grew", first_step=0, last_step=100)
    panel._on_result(entry.key, [dead(75, ["0.weight"]), other], "2 findings")
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0))       # the user clicks "dead ReLUs"
    assert selected_row(panel) == 0
    # Next diagnosis: a new error above it, and the dead units found in one more layer.
    panel._on_result(entry.key, [spike(), dead(86, ["0.weight", "2.weight"]), other], "3 findings")
    assert selected_row(panel) == 1
    assert panel.findings[1].symptom == "dead_units"
    assert "86%" in panel.details.toPlainText()
    # A diagnosis without it selects nothing: never another finding in its place.
    panel._on_result(entry.key, [spike(), other], "2 findings")
    assert selected_row(panel) is None


def test_nothing_selected_stays_unselected(window, qtbot, tmp_path):
    entry, = open_runs(window, [make_run(tmp_path / "live.h5", n_steps=120, n_layers=2)])
    panel = window.advisor
    panel.wait()
    panel._on_result(entry.key, [dead(75, ["0.weight"])], "1 finding")
    panel._on_result(entry.key, [spike(), dead(80, ["0.weight"])], "2 findings")
    assert selected_row(panel) is None


def test_the_demo_verdict_follows_the_numbers(window):
    from trainspect.app.gui.demo_window import LiveVerdict

    expected = {"symptoms": ["dead_units"], "causes": ["lr_too_high"]}
    verdict = LiveVerdict(window, expected)
    bar = window.statusBar()
    assert verdict.update([dead(75, ["0.weight"])]) is True
    assert "75%" in bar.currentMessage()
    assert verdict.update([spike(), dead(86, ["0.weight", "2.weight"])]) is False   # named before
    assert "86%" in bar.currentMessage() and "75%" not in bar.currentMessage()
    # Another message took the bar (training finished): a new verdict does not overwrite it.
    bar.showMessage("training finished (exit 0); the run stays open")
    verdict.update([dead(90, ["0.weight"])])
    assert bar.currentMessage().startswith("training finished")
