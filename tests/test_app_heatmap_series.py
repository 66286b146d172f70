"""The plot under the layer heatmap for layers that never got a gradient (cut off from the
loss, the advisor's frozen_layers focus): it was an empty frame under a jumble of default ticks
(8, 6, 5, 4, 3, 2 printed over each other). It now says the selected layers have no value."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("torch")

from tests.gui_helpers import open_runs, show_panel  # noqa: E402
from tests.test_graph_cut import record  # noqa: E402

WAIT_MS = 30_000


@pytest.mark.parametrize("layers, empty", [(["encoder.0"], True), (["head"], False)])
def test_selected_layers_without_values_say_so(window, tmp_path, qtbot, layers, empty):
    open_runs(window, [record(tmp_path / "cut.h5", 0, "detach")])
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    qtbot.waitUntil(lambda: hm.source is not None and hm.source.stat == "grad_norm", timeout=WAIT_MS)
    window.view.set_selected_layers(layers)
    title = lambda: hm.series_plot.titleLabel.text   # noqa: E731
    if empty:
        qtbot.waitUntil(lambda: "never recorded" in title(), timeout=WAIT_MS)
        assert not hm.series_plot.getAxis("left").isVisible()
        assert hm.layer_curves == []
    else:
        qtbot.waitUntil(lambda: len(hm.layer_curves) == 2, timeout=WAIT_MS)   # weight and bias
        assert "never recorded" not in title() and hm.series_plot.getAxis("left").isVisible()
