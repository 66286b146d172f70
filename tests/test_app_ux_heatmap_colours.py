"""The layer heatmap's colours (UX review trial14, H1 and H4).

H1: fraction statistics (dead fraction, <= 0, saturated; ``fraction=True`` in their spec) were
scaled to the data's range: a run whose ReLUs were 100 % dead everywhere was one dark purple
(viridis' low end, the colour of "healthy") over a colour bar with no tick label at all. They are
now on fixed 0..1 levels labelled 0, 0.5, 1; a constant map of any statistic has a labelled bar.
H4: NaN/Inf cells were blank, like steps never recorded; they are magenta (the report's colour)
and the caption under the map says "magenta: NaN/Inf"."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app import vocab  # noqa: E402
from trainspect.app.layer_data import LayerStatSource  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, show_panel  # noqa: E402

WAIT_MS = 30_000
NAN_FROM_ROW = 300


def plant(monkeypatch, stat, values_of):
    """Every read of ``stat`` gives ``values_of(first row, values)`` instead."""
    real = LayerStatSource._chunks

    def chunks(self, r0, r1):
        for a, (steps, values) in real(self, r0, r1):
            yield a, (steps, values_of(a, values) if self.stat == stat else values)

    monkeypatch.setattr(LayerStatSource, "_chunks", chunks)


def shown_map(window, qtbot, tmp_path, stat):
    path = make_run(tmp_path / "run.h5", n_steps=600, n_layers=4, stats_every=1)
    open_runs(window, [path])
    window.view.set_heatmap_stat(stat)
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    qtbot.waitUntil(lambda: hm.source is not None and hm.source.stat == stat and hm.shown.size > 0, timeout=WAIT_MS)
    return hm


def tick_labels(bar):
    """The texts the colour bar's axis draws (fixed ticks or its own)."""
    from PySide6.QtGui import QImage, QPainter

    image = QImage(200, 400, QImage.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = bar.axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in specs[2]] if specs else []


@pytest.mark.parametrize("stat", ["act_dead_frac", "act_frac_nonpos", "act_frac_saturated"])
def test_fraction_stats_are_declared_fractions(stat):
    assert vocab.LAYER_STAT_SPECS[stat].fraction


def test_all_dead_is_the_bright_end_of_a_0_to_1_bar(window, qtbot, tmp_path, monkeypatch):
    plant(monkeypatch, "act_dead_frac", lambda a, v: np.ones_like(v))   # 100 % dead everywhere
    hm = shown_map(window, qtbot, tmp_path, "act_dead_frac")
    assert hm.colorbar.levels() == (0.0, 1.0)
    assert tick_labels(hm.colorbar) == ["0", "0.5", "1"]
    # the cells are drawn with the top colour of the map (viridis' yellow)
    lut = hm.colorbar.colorMap().getLookupTable(nPts=256, alpha=False)
    lo, hi = hm.colorbar.levels()
    value = float(np.nanmax(hm.image.image))
    index = int(round((value - lo) / (hi - lo) * 255))
    assert index == 255 and tuple(lut[index][:3]) == tuple(lut[-1][:3])


def test_nearly_dead_is_on_the_same_fixed_scale(window, qtbot, tmp_path, monkeypatch):
    plant(monkeypatch, "act_dead_frac", lambda a, v: np.full_like(v, 0.9) + 0.1 * (np.arange(v.shape[1]) % 2))
    hm = shown_map(window, qtbot, tmp_path, "act_dead_frac")
    assert hm.colorbar.levels() == (0.0, 1.0)     # was 0.9 .. 1: 0.9 drawn as "healthy"


def test_a_constant_map_of_any_stat_has_a_labelled_colour_bar(window, qtbot, tmp_path, monkeypatch):
    plant(monkeypatch, "grad_norm", lambda a, v: np.full_like(v, 0.25))
    hm = shown_map(window, qtbot, tmp_path, "grad_norm")
    lo, hi = hm.colorbar.levels()
    assert lo < 0.25 < hi
    assert "0.25" in tick_labels(hm.colorbar)


def test_nan_cells_are_magenta_and_the_caption_says_so(window, qtbot, tmp_path, monkeypatch):
    def nan_late(a, values):
        rows = np.arange(a, a + values.shape[0])
        out = np.array(values, dtype=np.float64)
        out[rows >= NAN_FROM_ROW] = np.nan
        out[rows == NAN_FROM_ROW, 0] = np.inf
        return out

    plant(monkeypatch, "grad_norm", nan_late)
    hm = shown_map(window, qtbot, tmp_path, "grad_norm")
    bad = ~np.isfinite(hm.shown)
    assert bad.any()
    rgba = hm.nonfinite_image.image
    assert rgba is not None and rgba.shape[:2] == hm.shown.shape
    assert (rgba[bad] == (255, 0, 255, 255)).all()        # the report's #ff00ff
    assert (rgba[~bad][:, 3] == 0).all()                  # and nothing else
    assert hm.nonfinite_image.mapRectToParent(hm.nonfinite_image.boundingRect()) == \
        hm.image.mapRectToParent(hm.image.boundingRect())
    assert "magenta: NaN/Inf" in hm.series_plot.titleLabel.text


def test_no_nan_note_without_nan(window, qtbot, tmp_path):
    hm = shown_map(window, qtbot, tmp_path, "grad_norm")
    assert np.isfinite(hm.shown).all()
    assert "NaN" not in hm.series_plot.titleLabel.text
