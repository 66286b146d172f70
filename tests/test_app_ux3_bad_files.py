"""Several bad files: every error in the banner, each row's error read from its start
(UX review trial14, L6). The banner showed only the last of three errors, and the run list cut
the messages in their middle ("not an HDF5 fil...rainspect run?)")."""
import os

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QStyleOptionViewItem  # noqa: E402

from tests.fixtures_runs import make_corrupt_file, make_foreign_hdf5, make_run  # noqa: E402
from tests.gui_helpers import open_runs  # noqa: E402

SHOTS = os.environ.get("TRAINSPECT_UX_SHOTS")


def test_every_bad_file_is_listed_and_rows_cut_their_error_at_the_end(window, qtbot, tmp_path):
    window.resize(1600, 1000)
    bad = make_corrupt_file(tmp_path / "bad.h5")
    foreign = make_foreign_hdf5(tmp_path / "keras.h5")
    missing = tmp_path / "trunc.h5"
    good = make_run(tmp_path / "healthy.h5", n_steps=50, n_layers=0, name="sweep_adamw_lr0.0001_wd0.1_seed3_final")
    assert len(open_runs(window, [bad, foreign, missing, good])) == 1
    text = window.banner.label.text()
    assert text.startswith("3 files could not be opened or read:")
    for name in ("bad.h5", "keras.h5", "trunc.h5"):
        assert name in text
    assert len(text.splitlines()) == 4
    assert "keras.h5" in window.banner.label.toolTip()
    # the same file failing again is one line, not two
    window.show_error(str(missing), f"{missing}: still missing")
    assert len(window.banner.label.text().splitlines()) == 4 and "still missing" in window.banner.label.text()
    # closed: the next error starts a new list
    window.banner.dismiss()
    window.show_error(str(bad), f"{bad}: again")
    assert window.banner.label.text() == f"{bad}: again"

    rows = window.run_list.list
    assert rows.textElideMode() == Qt.ElideRight
    failed = [rows.item(i) for i in range(rows.count()) if "bad.h5" in rows.item(i).text()]
    (item,) = failed
    status = item.text().split("\n")[1]
    assert status.startswith("not an HDF5") or status.lower().startswith("not")    # the message's start, uncut
    assert "…" not in status[:40]
    assert "not an HDF5" in item.toolTip()
    # as painted: the name line cut in its middle (its distinguishing tail kept), the status
    # line cut at its end; the item keeps the whole text
    window.runs_dock.setMaximumWidth(200)
    qtbot.waitUntil(lambda: rows.viewport().width() < 200, timeout=10_000)
    for i in range(rows.count()):
        opt = QStyleOptionViewItem()
        opt.initFrom(rows.viewport())
        opt.rect = rows.visualItemRect(rows.item(i))
        opt.decorationSize = rows.iconSize()
        window.run_list.delegate.initStyleOption(opt, rows.model().index(i, 0))
        assert opt.textElideMode == Qt.ElideRight
        name_line = opt.text.split("\u2028")[0]
        assert opt.fontMetrics.horizontalAdvance(name_line) <= opt.rect.width()
        if "sweep_adamw" in rows.item(i).text():
            assert "…" in name_line and name_line.endswith("final") and name_line.startswith("sweep")
    if SHOTS:
        from trainspect.app.gui.main_window import render_screenshot
        window.show_error(str(foreign), f"{foreign}: not a trainspect run")
        window.show_error(str(missing), f"{missing}: no such file")
        render_screenshot(window, os.path.join(SHOTS, "ux3_bad_files.png"))
