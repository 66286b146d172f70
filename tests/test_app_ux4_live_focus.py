"""A finding clicked during a live run (UX review trial14 N3): the plots zoomed to its span at
click time (steps 13-17) and stopped following; as the run went on the row's "where" grew to
13-150 while the yellow highlight stayed at 13-17, and nothing said the view no longer
followed the live data."""
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import Cause, Evidence, Finding  # noqa: E402
from trainspect.analysis.run import RunStatus  # noqa: E402
from trainspect.analysis.vocab import RunState  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, shoot  # noqa: E402


def dead(last_step, pct):
    return Finding(symptom="dead_units", severity="error", title=f"dead ReLUs: {pct}% of the units of layer 3",
                   first_step=13, last_step=last_step, layers=["0.weight"],
                   evidence=[Evidence(series="train/loss", text=f"{pct}% dead", steps=[13, last_step])],
                   causes=[Cause(id="lr_too_high", confidence=0.6, why="big updates")])


def test_the_selected_findings_highlight_grows_with_it_and_the_held_view_is_named(window, qtbot, tmp_path):
    entry, = open_runs(window, [make_run(tmp_path / "live.h5", n_steps=200, n_layers=2)])
    panel = window.advisor
    panel.wait()
    panel._on_result(entry.key, [dead(17, 58)], "1 finding")
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0))          # the user clicks it
    assert window.view.highlight == (13.0, 17.0)
    held = window.view.step_range
    assert held is not None and held[0] <= 13 and held[1] >= 17
    region = window.scalars.regions[0]
    assert region.isVisible() and region.getRegion() == (13.0, 17.0)

    # the live run goes on: the same finding, diagnosed again, now spans steps 13-150
    panel._on_result(entry.key, [dead(150, 100)], "1 finding")
    assert panel.tree.currentItem() is panel.tree.topLevelItem(0)
    assert window.view.highlight == (13.0, 150.0)
    assert region.getRegion() == (13.0, 150.0)
    assert window.heatmap.span.getRegion()[1] >= 150.0
    assert 150.0 in [m.step for m in window.view.marks]
    assert window.view.step_range == held          # the view the user looks at does not jump

    # a live run, not followed: the status bar says so and how to follow again
    live = RunStatus(state=RunState.LIVE, last_step=150, heartbeat=time.time(), age_s=0.1)
    window.live.status = lambda e: live
    window._show_follow_note()
    assert not window.live.follow
    assert window.follow_note.isVisible()
    text = window.follow_note.text()
    assert "not following" in text and "F" in text and f"{held[0]:.0f}" in text
    shoot(window, "ux4_live_held.png")
    window.follow_action.trigger()                  # F: follow again
    assert window.live.follow and window.view.step_range is None
    assert not window.follow_note.isVisible()
    # a finished run is never "not followed"
    window.live.status = lambda e: RunStatus(state=RunState.FINISHED, last_step=199, heartbeat=0.0, age_s=9.0)
    window.view.set_step_range((10.0, 20.0))
    assert not window.follow_note.isVisible()
    # a live run held at a range padded below step 0 names no negative step
    window.live.status = lambda e: live
    window.view.set_step_range((-7.0, 207.0))
    window._show_follow_note()
    assert "showing steps 0–207" in window.follow_note.text()
