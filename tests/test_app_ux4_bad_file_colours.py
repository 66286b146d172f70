"""A good run opened together with files that fail takes the first run colour (UX review
trial14 L6): opened after three bad files it was pink, the 4th colour, though the three others
never drew anything."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.gui import model  # noqa: E402
from trainspect.app.gui.model import PALETTE  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S  # noqa: E402


def test_a_good_run_after_bad_files_gets_the_first_colour(window, qtbot, tmp_path, monkeypatch):
    # the batch's first file alone until it is done (not until a timer): the order is the test's
    monkeypatch.setattr(model, "FIRST_OPEN_GRACE_MS", 600_000)
    bad = []
    for k, text in enumerate((b"not a run at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, b"")):
        p = tmp_path / f"bad{k}.h5"
        p.write_bytes(text)
        bad.append(p)
    good = make_run(tmp_path / "good.h5", n_steps=50, n_layers=1)
    rows = window.open_paths([*bad, good])
    assert window.wait_loaded(WAIT_S)
    entries = {e.path.name: e for e in window.runs.runs()}
    assert entries["good.h5"].ready
    assert entries["good.h5"].color == PALETTE[0], [(e.path.name, e.state, e.color) for e in rows]
    # the row text of a failed file starts with its whole reason's start (cut at the end) and
    # its tooltip has all of it
    item = window.run_list.list.item(0)
    assert "not an HDF5" in item.toolTip() or "HDF5" in item.toolTip()
    # a second good run takes the next colour
    second = make_run(tmp_path / "second.h5", n_steps=50, n_layers=1)
    window.open_paths([second])
    assert window.wait_loaded(WAIT_S)
    assert {e.path.name: e for e in window.runs.runs()}["second.h5"].color == PALETTE[1]
