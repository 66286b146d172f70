"""The crosshair readout keeps to its two lines (UX review trial14 H2 remainder): with many runs
its text wrapped to a third line that the fixed-height strip cut mid-glyph."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, shoot  # noqa: E402


@pytest.mark.parametrize("width", [1300, 950])
def test_the_readout_text_fits_its_height_and_the_tooltip_has_every_run(window, qtbot, tmp_path, width):
    paths = [make_run(tmp_path / f"lr{10.0 ** -k:.0e}_wd{w}_long_sweep_name.h5", n_steps=60, n_layers=0, seed=k)
             for k in range(1, 6) for w in (0, 1)]
    entries = open_runs(window, paths)
    assert len(entries) == 10
    window.resize(width, 900)
    qtbot.wait(100)
    readout = window.scalars.readout
    window.scalars.show_crosshair(30.0, "train/loss")
    assert readout.heightForWidth(readout.width()) <= readout.height()
    assert "more" in readout.text()                  # the runs left out are counted ...
    for e in entries:                               # ... and every one is in the tooltip
        assert e.name in readout.toolTip()
    # two lines of it fit: the strip is at least as tall as two lines of its rich text
    readout.setText("<b>step 1</b> &#9632;&nbsp;Ag<br><b>step 1</b> &#9632;&nbsp;Ag")
    assert readout.heightForWidth(4000) <= readout.height()
    window.scalars.show_crosshair(30.0, "train/loss")
    shoot(window, f"ux4_readout_{width}.png")
