"""Folders in the GUI (UX review trial14, M6) and the LR range test tab's empty state (L1).

M6: opening or dropping a folder gave "sweep: is a directory, not a run file" and a red row,
while ``trainspect open sweep/`` opened the runs in it. The window expands folders the way the
CLI does (run_paths.expand_runs), and File has "Open folder…".
L1: the LR range test tab's empty state showed its ``<br><code>`` tags as text."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from trainspect.app.gui.widgets.lr_sweep import NO_SWEEP  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, show_panel  # noqa: E402


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    for i in range(3):
        make_run(d / f"lr{i}.h5", n_steps=50, n_layers=0, name=f"lr{i}", seed=i)
    (d / "notes.txt").write_text("not a run")
    return d


def test_opening_a_folder_opens_the_runs_in_it(window, sweep_dir):
    opened = open_runs(window, [str(sweep_dir)])
    assert sorted(e.name for e in opened) == ["lr0", "lr1", "lr2"]
    assert not window.errors
    assert all(e.state != "failed" for e in window.runs.rows())


def test_dropping_a_folder_opens_the_runs_in_it(window, sweep_dir):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sweep_dir))])
    event = QDropEvent(QPoint(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    assert window.wait_loaded(WAIT_S)
    assert sorted(e.name for e in window.runs.runs()) == ["lr0", "lr1", "lr2"]
    assert not window.errors


def test_an_empty_folder_says_so(window, tmp_path):
    (tmp_path / "empty").mkdir()
    open_runs(window, [str(tmp_path / "empty")])
    assert window.errors and "no run files" in window.errors[-1]
    assert "is a directory" not in window.errors[-1]


def test_file_menu_has_open_folder(window):
    file_menu = window.menuBar().actions()[0].menu()
    texts = [a.text().replace("&", "") for a in file_menu.actions()]
    assert "Open folder…" in texts


def test_lr_range_test_empty_state_reads_as_text(window, qtbot, sweep_dir):
    open_runs(window, [str(sweep_dir / "lr0.h5")])
    panel = window.lr_sweep if hasattr(window, "lr_sweep") else None
    if panel is None:
        from trainspect.app.gui.widgets.lr_sweep import LRSweepPanel
        panel = window.findChild(LRSweepPanel)
    show_panel(window, qtbot, panel)
    qtbot.waitUntil(lambda: panel.message.isVisible(), timeout=int(WAIT_S * 1000))
    label = panel.message
    assert label.text() == NO_SWEEP
    assert label.textFormat() == Qt.PlainText
    assert "<" not in label.text()          # no tag shown as text
    assert "from trainspect import lr_range_test\n" in label.text()
