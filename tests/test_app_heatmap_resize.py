"""The layer heatmap follows the window's size: a finished run shown in a small window and
then maximised is pooled again to the new pixel width (a resize changes no step range, so
nothing else would re-pool it)."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, show_panel  # noqa: E402

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """20 k steps of layer statistics on every step: far more steps than pixels."""
    return make_run(tmp_path_factory.mktemp("resize") / "long.h5", n_steps=20_000, metrics=("train/loss",),
                    n_layers=3, stats_every=1, hist_every=10_000, snapshot_every=10_000)


def columns(hm) -> int:
    return hm.image.image.shape[1] if hm.image.image is not None else 0


def settled(hm) -> bool:
    return hm.source is not None and not hm.reading() and columns(hm) > 0


@pytest.mark.parametrize("zoomed", [False, True], ids=["whole run", "zoomed in"])
@pytest.mark.parametrize("scale", [2.0, 0.5], ids=["wider", "narrower"])
def test_heatmap_is_pooled_again_after_a_resize(window, long_run, qtbot, scale, zoomed):
    window.resize(700, 600)
    open_runs(window, [long_run])
    window.advisor.wait()
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    lo, hi = (2_000, 17_999) if zoomed else (0, 19_999)
    if zoomed:   # a fixed step range: a resize changes no range, only the pixels it spans
        window.view.set_step_range((lo, hi))
        vb = hm.plot.getViewBox()
        qtbot.waitUntil(lambda: not vb.autoRangeEnabled()[0], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: settled(hm), timeout=WAIT_MS)
    before = hm.pixel_width()
    assert columns(hm) <= before
    window.resize(int(700 * scale) if scale > 1 else 700, 600)
    if scale < 1:   # shrink from a wide window instead: start wide, then make it narrow
        window.resize(1400, 600)
        # (a width, not a ratio: the docks' and axes' fixed widths set how much of the 700 px
        # the map gets, and a narrower layer axis made 312 -> 461 px, under 1.5 x)
        qtbot.waitUntil(lambda: hm.pixel_width() > before + 100 and settled(hm)
                        and columns(hm) > before, timeout=WAIT_MS)
        before = hm.pixel_width()
        window.resize(700, 600)
    # the columns follow the new width: more columns when wider, never more than the pixels
    qtbot.waitUntil(lambda: abs(hm.pixel_width() - before) > 100, timeout=WAIT_MS)
    if scale > 1:
        qtbot.waitUntil(lambda: settled(hm) and columns(hm) > before, timeout=WAIT_MS)
    else:
        qtbot.waitUntil(lambda: settled(hm) and columns(hm) <= hm.pixel_width() < before, timeout=WAIT_MS)
    assert columns(hm) <= hm.pixel_width()
    # every step in view is still in the picture
    first, last = hm.buckets
    assert first[0] <= lo + 1 and last[-1] >= hi - 1
