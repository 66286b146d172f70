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
    pairs = ((panel.snap_plot, panel.snap_image), (panel.hist_plot, panel.hist_image))

    def fills(plot, image):
        box, drawn = plot.getViewBox().sceneBoundingRect(), image.sceneBoundingRect()
        return drawn.width() >= 0.98 * box.width() and drawn.height() >= 0.98 * box.height()

    # the image covers its plot area: no empty margin wider than 2 % of it on any side, once the
    # layout has settled (a loaded machine runs the deferred resize later than 100 ms)
    try:
        qtbot.waitUntil(lambda: all(fills(p, i) for p, i in pairs), timeout=WAIT_MS)
    except Exception:   # noqa: BLE001 - say which plot left a margin
        for plot, image in pairs:
            assert fills(plot, image), (plot, plot.getViewBox().sceneBoundingRect(), image.sceneBoundingRect())
    shoot(window, "ux4_distributions.png")
