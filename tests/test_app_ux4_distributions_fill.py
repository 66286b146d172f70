"""The Distributions tab's plots fill their room (UX review trial14 L8): the weight snapshot's
square cells left wide margins beside the matrix (x -12..45 for 32 columns), and the histogram
image sat in a padded box."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def test_snapshot_and_histograms_fill_their_plots(window, qtbot, tmp_path):
    open_runs(window, [make_run(tmp_path / "run.h5", n_steps=300, n_layers=2, hist_every=100, snapshot_every=100)])
    panel = window.distributions
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.entry is not None and len(panel.snap_steps) > 0
                    and panel.hist_image_data.size > 0 and not panel.reading(), timeout=WAIT_MS)
    qtbot.wait(100)
    for plot, image in ((panel.snap_plot, panel.snap_image), (panel.hist_plot, panel.hist_image)):
        vb = plot.getViewBox()
        box, drawn = vb.sceneBoundingRect(), image.sceneBoundingRect()
        # the image covers its plot area: no empty margin wider than 2 % of it on any side
        assert drawn.width() >= 0.98 * box.width() and drawn.height() >= 0.98 * box.height(), (plot, box, drawn)
    shoot(window, "ux4_distributions.png")
