"""A finding clicked in the advisor marks the steps its evidence names on the plot of the series
they were seen in: the three repeats of a cycle, the spikes. The highlight alone showed where the
finding spans, not which points in it are the evidence. (Marks on every plot put a gradient-norm
spike's line on the loss: trial14 M3, tests/test_app_ux3_marks.py.)"""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import diagnose
from trainspect.analysis.findings import Evidence, Finding
from trainspect.recorder import Recorder

from tests.gui_helpers import open_runs

WAIT_MS = 30_000


def _repeating_run(path, seed=0):
    """A loss whose batches come in the same order every 30 steps (and an LR beside it)."""
    rng = np.random.default_rng(seed)
    pattern = rng.lognormal(0.0, 0.4, 30)
    with Recorder(path) as rec:
        for i in range(600):
            loss = (2.0 * np.exp(-i / 150) + 0.1) * pattern[i % 30] * rng.lognormal(0.0, 0.1)
            rec.log({"train/loss": float(loss), "train/lr": 1e-3}, step=i)


def _shown(window):
    window.view.set_metrics(["train/loss", "train/lr"])
    return lambda: all(c.n_points and not c.rebuild for c in window.scalars.curves.values())


def test_the_evidence_steps_of_a_focused_finding_are_marked_on_their_series_plot(window, qtbot, tmp_path):
    path = tmp_path / "run.h5"
    _repeating_run(path)
    finding = next(f for f in diagnose(path) if f.symptom == "periodic_loss")
    peaks = finding.evidence[0].steps
    assert len(peaks) == 3
    open_runs(window, [path])
    qtbot.waitUntil(_shown(window), timeout=WAIT_MS)
    window.view.focus_finding(finding)
    assert finding.evidence[0].series == "train/loss"
    assert window.scalars.marked("train/loss") == pytest.approx(peaks)
    assert window.scalars.marked("train/lr") == []          # not a series of the evidence
    # a finding whose evidence names its span's ends: those two points are marked
    plain = Finding(symptom="no_progress", severity="warning", title="flat", first_step=100, last_step=500,
                    evidence=[Evidence(series="train/loss", text="flat", steps=[100, 500])])
    window.view.focus_finding(plain)
    assert window.scalars.marked("train/loss") == pytest.approx([100, 500])


def test_marks_follow_the_x_axis_and_reach_plots_added_later(window, qtbot, tmp_path):
    path = tmp_path / "run.h5"
    _repeating_run(path, seed=1)
    finding = next(f for f in diagnose(path) if f.symptom == "periodic_loss")
    open_runs(window, [path])
    window.view.set_metrics(["train/lr"])
    qtbot.waitUntil(lambda: all(c.n_points for c in window.scalars.curves.values()), timeout=WAIT_MS)
    window.view.focus_finding(finding)
    assert window.scalars.marked("train/lr") == []
    window.view.set_metrics(["train/loss", "train/lr"])          # the evidence's plot ticked after the click
    qtbot.waitUntil(_shown(window), timeout=WAIT_MS)
    assert window.scalars.marked("train/loss") == pytest.approx(finding.evidence[0].steps)
    window.view.set_x_mode("wall")
    qtbot.waitUntil(_shown(window), timeout=WAIT_MS)
    expected = window.scalars.step_to_x(np.array(finding.evidence[0].steps, dtype=np.float64))
    assert window.scalars.marked("train/loss") == pytest.approx(list(expected))
    assert min(expected) > 1e9                                    # wall-clock seconds, not steps
