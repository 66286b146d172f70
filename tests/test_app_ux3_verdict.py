"""A run-level verdict at the top of the Advisor panel (UX review trial14, M9, app part).

The CLI demo prints one line naming the problem; the app listed findings whose top causes
differed and left the user to add them up. Now the panel's first line names the most severe
finding's top cause and the findings that agree with it; the tooltip lists the rest."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis.findings import Cause, Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def finding(symptom, severity, causes, title=None):
    return Finding(symptom=symptom, severity=severity, title=title or symptom.replace("_", " "), first_step=0,
                   last_step=99, evidence=[Evidence(series="train/loss", text="seen", steps=[10])],
                   causes=[Cause(id=c, confidence=0.5, why="because") for c in causes])


LRHIGH = [finding("dead_units", "error", ["lr_too_high", "bad_init"], "dead ReLUs: 86% in 2 layers"),
          finding("no_progress", "warning", ["lr_too_high", "bad_init"]),
          finding("loss_spikes", "warning", ["lr_too_high", "label_noise"]),
          finding("overfitting", "warning", ["insufficient_regularization"]),
          finding("frozen_layers", "info", ["optimizer_setup"])]


def test_the_verdict_names_the_top_cause_and_the_findings_that_agree(window, qtbot, tmp_path):
    path = make_run(tmp_path / "lrhigh.h5", n_steps=100, n_layers=0)
    (entry,) = open_runs(window, [path])
    panel = window.advisor
    panel.wait()
    panel.set_findings(LRHIGH, "<b>lrhigh</b>: 5 findings")
    assert panel.verdict.isVisible()
    text = panel.verdict.text()
    assert text.startswith("likely problem: lr too high — seen as dead units, no progress, loss spikes")
    assert "1 other finding points elsewhere" in text
    assert "overfitting" in panel.verdict.toolTip() and "insufficient regularization" in panel.verdict.toolTip()
    # it sits above the findings
    assert panel.verdict.geometry().bottom() <= panel.tree.mapTo(panel, panel.tree.rect().topLeft()).y()
    shoot(window, "ux3_verdict.png")
    # nothing that warns: no verdict line
    panel.set_findings([LRHIGH[-1]], "1 note")
    assert not panel.verdict.isVisible()
    panel.set_findings([], "no problems found")
    assert not panel.verdict.isVisible()
