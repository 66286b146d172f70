"""A constant series (a learning rate held at 3e-3, an unchanged loss scale) is drawn around its
value. pyqtgraph kept the plot's previous height for a zero-height range, so the LR showed as a
flat line at "0" on an axis from -0.4 to 0.4 and its value could not be read."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.gui.widgets.flat_view import FLAT_BAND, flat_band
from trainspect.recorder import Recorder

from tests.gui_helpers import open_runs

WAIT_MS = 30_000


def y_range(window, metric):
    return window.scalars.plots[metric].getViewBox().viewRange()[1]


@pytest.mark.parametrize("lr", [3e-3, -2.5, 1e-9])
def test_a_constant_metric_is_shown_around_its_value(window, qtbot, tmp_path, lr):
    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        for i in range(200):
            rec.log({"train/loss": 2.0 / (1 + i), "train/lr": lr}, step=i)
    open_runs(window, [path])
    window.view.set_metrics(["train/loss", "train/lr"])
    qtbot.waitUntil(lambda: all(c.n_points and not c.rebuild for c in window.scalars.curves.values()),
                    timeout=WAIT_MS)
    low, high = y_range(window, "train/lr")
    assert low < lr < high
    assert high - low <= 2.5 * FLAT_BAND * abs(lr)      # the value is readable off the axis
    loss_low, loss_high = y_range(window, "train/loss")   # a varying series keeps its autorange
    assert loss_low <= 2.0 / 200 and loss_high >= 2.0


def test_zero_and_non_finite_values_keep_pyqtgraphs_range():
    assert flat_band(0.0) is None and flat_band(float("nan")) is None and flat_band(float("inf")) is None
    assert flat_band(3e-3) == pytest.approx((2.7e-3, 3.3e-3))
