"""The layer heatmap's log colour scale: exact zeros (a vanishing gradient underflowing to 0 in
the first layers) no longer turn it off, they are drawn grey and the colour bar says so; and a
few far-out cells (ReLUs that died late) no longer stretch the levels over the rest."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.layer_data import LayerStatSource  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, show_panel  # noqa: E402

WAIT_MS = 30_000
N_LAYERS = 8          # make_run(n_layers=4): a weight and a bias per block
DEAD_FROM_ROW = 400   # the late rows where the first layer's gradient is 1e-41


def vanishing(first_row, shape):
    """Layers 0-1 exactly 0, then 1e-44 .. 1e-1 down the depth: a vanishing gradient."""
    col = np.zeros(shape[1])
    col[2:] = 10.0 ** np.linspace(-44, -1, shape[1] - 2)
    return np.tile(col, (shape[0], 1))


def late_outliers(first_row, shape):
    """1e-4 .. 1 everywhere, except layer 0 from DEAD_FROM_ROW on: 1e-41 (4 % of the cells)."""
    rows = np.arange(first_row, first_row + shape[0])
    rng = np.random.default_rng(first_row)
    values = 10.0 ** rng.uniform(-4, 0, shape)
    values[rows >= DEAD_FROM_ROW, 0] = 1e-41
    return values


def plant(monkeypatch, values_of):
    """Every read of the gradient norms gives ``values_of(first row, shape)`` instead."""
    real = LayerStatSource._chunks

    def chunks(self, r0, r1):
        for a, (steps, values) in real(self, r0, r1):
            yield a, (steps, values_of(a, values.shape) if self.stat == "grad_norm" else values)

    monkeypatch.setattr(LayerStatSource, "_chunks", chunks)


def shown_heatmap(window, qtbot, tmp_path):
    path = make_run(tmp_path / "run.h5", n_steps=600, n_layers=4, stats_every=1)
    open_runs(window, [path])
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    qtbot.waitUntil(lambda: hm.source is not None and hm.source.stat == "grad_norm" and hm.shown.size > 0, timeout=WAIT_MS)
    assert len(hm.source.layers) == N_LAYERS
    return hm


def test_exact_zeros_keep_the_log_scale_and_are_drawn_grey(window, qtbot, tmp_path, monkeypatch):
    plant(monkeypatch, vanishing)
    hm = shown_heatmap(window, qtbot, tmp_path)
    assert hm.is_log                          # 25 % zeros: the scale was linear, one flat colour
    lo, hi = hm.colorbar.levels()
    assert lo < -40 and -2 < hi < 0           # the whole depth profile has colours
    assert "exactly 0" in hm.series_plot.titleLabel.text       # under the map: the colour bar's label is short
    zero = hm.zero_image
    alpha = zero.image[:, :, 3]
    assert (alpha[:2] == 255).all() and (alpha[2:] == 0).all()   # the zero rows, and only they
    assert zero.mapRectToParent(zero.boundingRect()) == hm.image.mapRectToParent(hm.image.boundingRect())


def test_a_few_far_out_cells_do_not_stretch_the_colour_levels(window, qtbot, tmp_path, monkeypatch):
    plant(monkeypatch, late_outliers)
    hm = shown_heatmap(window, qtbot, tmp_path)
    assert hm.is_log
    lo, hi = hm.colorbar.levels()
    assert -10 < lo < -3.5 and -0.5 < hi <= 0  # was -41 .. 0: the 1e-4 .. 1 cells all one yellow
    assert "exactly 0" not in hm.series_plot.titleLabel.text



def small(first_row, shape):
    """Gradient norms between 2e-4 and 9e-4: less than a decade, a linear colour scale."""
    return np.random.default_rng(first_row).uniform(2e-4, 9e-4, shape)


def test_the_colour_bar_reads_its_levels_without_an_si_factor(window, qtbot, tmp_path, monkeypatch):
    """pyqtgraph rescaled the colour bar's axis: "... (x0.0001)" over ticks 2 .. 9, or levels
    -0.6 .. 0.2 of a log scale as "(x0.001)" over -600 .. 200. The levels are what to read."""
    plant(monkeypatch, small)
    hm = shown_heatmap(window, qtbot, tmp_path)
    lo, hi = hm.colorbar.levels()
    assert 1e-4 < lo < hi < 1e-3
    axis = hm.colorbar.axis
    assert "(x" not in axis.labelString()
    ticks = [v for _, values in axis.tickValues(lo, hi, 300) for v in values]
    strings = axis.tickStrings(ticks, axis.scale, 1e-4)
    assert ticks and all(abs(float(t) - v) < 1e-9 for t, v in zip(strings, ticks)), (strings, ticks)
