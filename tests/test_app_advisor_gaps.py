"""The advisor panel says what it could not check, as ``trainspect diagnose`` does: a run with no
per-layer records showed only "no problems found", read as a clean bill of health."""
import html

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402

WAIT_MS = 60_000


def test_the_advisor_panel_lists_what_it_could_not_check(window, tmp_path, qtbot):
    coverage = pytest.importorskip("trainspect.analysis.advisor").coverage
    path = make_run(tmp_path / "valonly.h5", n_steps=300, metrics=("val/loss", "val/acc"), n_layers=0)
    gaps = coverage(path).gaps
    assert gaps, "the run lacks per-layer records: the advisor has gaps to report"
    open_runs(window, [path])
    panel = window.advisor
    panel.wait()
    qtbot.waitUntil(lambda: "diagnosing" not in panel.status.text(), timeout=WAIT_MS)
    text = panel.gaps.text()
    assert panel.gaps.isVisible() and "not checked" in text
    for gap in gaps:                 # a line per gap, in the CLI's words
        assert html.escape(gap.missing) in text
    if not panel.findings:
        assert "among what it could check" in panel.status.text()
    window.close_current()
    qtbot.waitUntil(lambda: not panel.gaps.isVisible(), timeout=WAIT_MS)
