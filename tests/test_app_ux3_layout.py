"""Room for what has data, help for the keys, the advisor in view (UX review trial14 L5, L9, L10).

L5: a scalar-only run left 40 % of the window to a Layers tab saying "no per-layer statistics",
and the Ranks and LR range test tabs showed for every run. L9: no Help menu, no shortcut list,
no key for the next/previous finding. L10: below 1000 px the Advisor is tabbed behind Runs; a
selected finding zoomed the plots while its explanation stayed hidden."""
import os

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QKeySequence  # noqa: E402

from trainspect.analysis.findings import Cause, Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import SHOTS, WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def tab_shown(window, panel) -> bool:
    return window.tabs.isTabVisible(window.tabs.indexOf(panel))


def test_a_scalar_only_run_gives_the_plots_the_room_and_empty_tabs_hide(window, qtbot, tmp_path):
    (entry,) = open_runs(window, [make_run(tmp_path / "scalars.h5", n_steps=200, n_layers=0)])
    qtbot.waitUntil(lambda: entry.key in window._layer_data, timeout=WAIT_MS)
    plots_px, tabs_px = window.splitter.sizes()
    assert tabs_px <= 140 and plots_px > 5 * tabs_px, window.splitter.sizes()
    assert window.heatmap.message.isVisible() and window.heatmap.message.visibleRegion().boundingRect().height() > 10
    assert not window.heatmap.stat_combo.isVisible()          # no empty "statistic:" combo
    assert not tab_shown(window, window.ranks) and not tab_shown(window, window.lr_sweep)
    shoot(window, "ux3_scalar_only.png")
    # a taller window grows the plots, not the empty tab
    window.resize(1300, 1150)
    qtbot.waitUntil(lambda: window.splitter.sizes()[0] > plots_px + 100, timeout=WAIT_MS)
    assert window.splitter.sizes()[1] <= 140
    # reachable from the View menu (Ctrl+5 / Ctrl+6)
    show = {a.text(): a for a in window.actions()}
    assert show["Show Ranks"].shortcut() == QKeySequence("Ctrl+5")
    assert show["Show LR range test"].shortcut() == QKeySequence("Ctrl+6")
    show["Show Ranks"].trigger()
    assert tab_shown(window, window.ranks) and window.tabs.currentWidget() is window.ranks
    assert window.splitter.sizes()[1] > 200                  # another tab: its room back
    window._update_optional_tabs()
    assert tab_shown(window, window.ranks)                   # asked for: it stays
    window.tabs.setCurrentWidget(window.heatmap)
    assert window.splitter.sizes()[1] <= 140

    # a run with per-layer records: the Layers tab gets its room back
    (deep,) = [e for e in open_runs(window, [make_run(tmp_path / "layers.h5", n_steps=200, n_layers=3)])]
    window.runs.set_current(deep)
    qtbot.waitUntil(lambda: window._layer_data.get(deep.key) is True, timeout=WAIT_MS)
    assert window.splitter.sizes()[1] > 250, window.splitter.sizes()
    assert window.heatmap.stat_combo.isVisible()


FINDINGS = [Finding(symptom=s, severity="warning", title=s.replace("_", " "), first_step=10 * i, last_step=10 * i + 5,
                    evidence=[Evidence(series="train/loss", text="seen", steps=[10 * i + 2])],
                    causes=[Cause(id="lr_too_high", confidence=0.5, why="")])
            for i, s in enumerate(("loss_spikes", "no_progress", "dead_units"))]


def test_help_lists_every_shortcut_from_the_actions_and_n_p_step_through_findings(window, qtbot, tmp_path):
    names = [m.text().replace("&", "") for m in (a for a in window.menuBar().actions())]
    assert "Help" in names
    rows = window.shortcut_rows()
    listed = {(text, keys) for _, text, keys in rows}
    for act in window.actions():           # every shortcut of the window, none hard-coded
        if act.shortcuts():
            keys = ", ".join(k.toString(QKeySequence.NativeText) for k in act.shortcuts())
            assert any(keys == k for _, k in listed), (act.text(), keys)
    by_text = {text: keys for _, text, keys in rows}
    assert by_text["Next finding"] == "N, Alt+Down" and by_text["Previous finding"] == "P, Alt+Up"
    assert "Keyboard shortcuts" in by_text and "Log y axis" in by_text and "Show Compare" in by_text
    dialog = window.show_shortcuts()
    assert dialog.table.rowCount() == len(rows)
    if SHOTS:
        dialog.grab().save(os.path.join(SHOTS, "ux3_shortcuts.png"))
    dialog.close()

    open_runs(window, [make_run(tmp_path / "run.h5", n_steps=100, n_layers=0)])
    panel = window.advisor
    panel.wait()
    panel.set_findings(FINDINGS, "3 findings")
    window.next_finding_action.trigger()
    assert panel.selected_finding() is FINDINGS[0] and window.view.highlight == (0.0, 5.0)
    window.next_finding_action.trigger()
    window.next_finding_action.trigger()
    window.next_finding_action.trigger()                      # stays on the last
    assert panel.selected_finding() is FINDINGS[2] and window.view.highlight == (20.0, 25.0)
    window.previous_finding_action.trigger()
    assert panel.selected_finding() is FINDINGS[1]


def advisor_in_view(window) -> bool:
    details = window.advisor.details
    return details.isVisible() and not details.visibleRegion().isEmpty()


def test_a_focused_finding_brings_the_tabbed_advisor_to_the_front(window, qtbot, tmp_path):
    window.resize(900, 700)
    qtbot.waitUntil(lambda: window._advisor_tabbed, timeout=WAIT_MS)
    open_runs(window, [make_run(tmp_path / "run.h5", n_steps=100, n_layers=0)])
    panel = window.advisor
    panel.wait()
    panel.set_findings(FINDINGS, "3 findings")
    window.runs_dock.raise_()
    qtbot.waitUntil(lambda: not advisor_in_view(window), timeout=WAIT_MS)
    panel.tree.setCurrentItem(panel.tree.topLevelItem(1))     # as the screenshot / a click does
    qtbot.waitUntil(lambda: advisor_in_view(window), timeout=WAIT_MS)
    assert "no progress" in panel.details.toPlainText()
    shoot(window, "ux3_narrow_focused.png")
    # a wide window, a finding selected, then narrowed: the advisor is the tab in front
    window.resize(1300, 900)
    qtbot.waitUntil(lambda: not window._advisor_tabbed, timeout=WAIT_MS)
    window.resize(900, 700)
    qtbot.waitUntil(lambda: window._advisor_tabbed, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: advisor_in_view(window), timeout=WAIT_MS)
