"""A run far off the others' scale does not flatten them: it is left out of the y range, drawn
clipped, and named in the plot's title with how far it goes (trial 17, F13: a folder of 40 runs,
one diverged to -4e30, drew every other loss as a flat line at 0). One run's own spike is never
clipped: with fewer than three runs, or within OFF_SCALE of the rest, the range holds everything."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.gui.widgets.flat_view import OFF_SCALE, off_scale_runs  # noqa: E402

from tests.gui_helpers import WAIT_S, open_runs  # noqa: E402
from tests.test_app_step_weighted_smoothing import scalar_file  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def test_the_run_that_stretches_the_range_is_left_out():
    assert set(off_scale_runs({"a": (0, 5), "b": (0.1, 4), "c": (-4e30, 0.5)})) == {"c"}
    forty = {i: (0.1 * i, 2 + 0.05 * i) for i in range(40)}
    assert set(off_scale_runs(forty | {"x": (-4e30, 0), "y": (1, 3e4)})) == {"x", "y"}
    # not far enough off, too few runs, or all alike: nothing is left out
    assert off_scale_runs({"a": (0, 5), "b": (0, 0.5 * OFF_SCALE * 5), "c": (0, 4)}) == {}
    assert off_scale_runs({"a": (0, 5), "b": (0, 1e30)}) == {}
    assert off_scale_runs({"a": (2, 2), "b": (2, 2), "c": (2, 2)}) == {}
    # at most a third of the runs: three runs on three scales are three runs, not outliers
    assert len(off_scale_runs({"a": (0, 1), "b": (0, 1e4), "c": (0, 1e8)})) <= 1
    assert off_scale_runs({"a": (0, 1), "b": (0, np.inf), "c": (0, 2)}) == {}


def _loss(tmp_path, name, values):
    steps = np.arange(len(values))
    return scalar_file(tmp_path / f"{name}.h5", {"train/loss": (steps, np.asarray(values, float))})


def test_a_diverged_run_among_healthy_ones_is_named_and_the_others_fill_the_plot(window, tmp_path, qtbot):
    good = [2.3 * np.exp(-np.arange(200) / (60 + 10 * k)) + 0.1 for k in range(4)]
    bad = -np.exp(np.linspace(0, 69, 200))            # to -1e30
    paths = [_loss(tmp_path, f"ok{k}", g) for k, g in enumerate(good)] + [_loss(tmp_path, "diverged", bad)]
    open_runs(window, paths)
    window.view.set_metrics(["train/loss"])
    qtbot.waitUntil(lambda: "train/loss" in window.scalars.plots
                    and len(window.scalars.curves) == 5 and all(c.n_points for c in window.scalars.curves.values()),
                    timeout=WAIT_MS)
    plot = window.scalars.plots["train/loss"]

    def y_range():
        return plot.getViewBox().viewRange()[1]
    qtbot.waitUntil(lambda: -1.0 < y_range()[0] and y_range()[1] < 5.0 and y_range()[1] > 2.3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "off scale" in window.scalars._titles["train/loss"], timeout=WAIT_MS)
    title = window.scalars._titles["train/loss"]
    assert "diverged to -9.25e+29" in title and "ok0" not in title       # its last value, -exp(69)


def test_one_runs_spike_stays_in_view(window, tmp_path, qtbot):
    loss = np.full(300, 2.0)
    loss[150] = 2.0e6                                  # a spike a million times the rest
    open_runs(window, [_loss(tmp_path, "spiky", loss)])
    window.view.set_metrics(["train/loss"])
    qtbot.waitUntil(lambda: "train/loss" in window.scalars.plots
                    and all(c.n_points for c in window.scalars.curves.values()), timeout=WAIT_MS)
    plot = window.scalars.plots["train/loss"]
    qtbot.waitUntil(lambda: plot.getViewBox().viewRange()[1][1] >= 2.0e6, timeout=WAIT_MS)
    assert "off scale" not in window.scalars._titles["train/loss"]
