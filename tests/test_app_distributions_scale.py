"""Distributions: every recorded histogram is readable (trial14 L8).

With the default hist_every=200 a 300-step run has two records; on one value axis the step-0
weights (+-0.2) were a 1-px line beside weights that grew to +-30. When the records' max |value|
differ 10x or more the panel opens on "each step ÷ its max |value|"; the user can switch.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.gui.widgets.distributions import (  # noqa: E402
    HIST_DISPLAY_BINS, SCALE_EACH, SCALE_SHARED, default_scale, rebin_each_record)
from trainspect.app.lod import rebin_histograms  # noqa: E402
from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, shoot, show_panel  # noqa: E402

READABLE_ROWS = 20      # value bins (of 96) a distribution spreads over to be read as a shape


def _gaussian_counts(seed, scale, n=4096, bins=64):
    values = np.random.default_rng(seed).normal(0, scale, n)
    lo, hi = values.min(), values.max()
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return counts, (lo, hi)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_record_spreads_over_its_own_range(seed):
    c0, r0 = _gaussian_counts(seed, 0.07)
    c1, r1 = _gaussian_counts(seed + 10, 10.0)
    counts, ranges = np.stack([c0, c1]), np.array([r0, r1])
    shared, _, _ = rebin_histograms(counts, ranges, HIST_DISPLAY_BINS)
    each, scales = rebin_each_record(counts, ranges, HIST_DISPLAY_BINS)
    assert np.count_nonzero(shared[0] > 0.5) <= 3                 # the old view: a line
    assert all(np.count_nonzero(each[r] > 0.5) >= READABLE_ROWS for r in range(2))
    assert np.allclose(each.sum(axis=1), counts.sum(axis=1))      # no count lost
    assert scales == pytest.approx(np.abs(ranges).max(axis=1))
    for r in range(2):                                            # centred: the peak is at value 0
        assert abs(np.argmax(np.convolve(each[r], np.ones(9), "same")) - HIST_DISPLAY_BINS / 2) <= 8
    assert default_scale(scales) == SCALE_EACH
    assert default_scale([0.2, 0.3, 0.5]) == SCALE_SHARED and default_scale([0.0, 0.2, 1.0]) == SCALE_SHARED


def test_degenerate_records_stay_in_range():
    counts = np.array([[0, 5, 0], [3, 0, 0], [0, 0, 0]], float)
    ranges = np.array([[0.0, 0.0], [2.0, 2.0], [np.nan, np.nan]])
    each, scales = rebin_each_record(counts, ranges, 8)
    assert each[0].sum() == 5 and each[0, 4] == 5                  # all zeros: the middle bin
    assert each[1].sum() == pytest.approx(3) and each[1, -1] == pytest.approx(3)   # all 2.0: the top
    assert not each[2].any() and np.isnan(scales[2])


@pytest.fixture(scope="module")
def grown_run(tmp_path_factory):
    """A real recorded 300-step run, histograms at the default hist_every (200): its weights are
    multiplied by 100 at step 100, so step 200's are ~100x step 0's."""
    torch = pytest.importorskip("torch")
    from trainspect import Recorder

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    path = tmp_path_factory.mktemp("dist") / "grown.h5"
    x, y = torch.randn(256, 32), torch.randint(0, 10, (256,))
    with Recorder(path, name="grown") as rec:
        rec.watch(model, opt)
        for step in range(300):
            if step == 100:
                with torch.no_grad():
                    for p in model.parameters():
                        p.mul_(100.0)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
    return path


def _rows_used(d, column_step):
    """Value bins of the histogram image with counts at ``column_step``."""
    image = d.hist_image
    rect = image.mapRectToParent(image.boundingRect())
    drawn = image.image
    col = int((column_step - rect.left()) / rect.width() * drawn.shape[1])
    return int(np.count_nonzero(drawn[:, min(col, drawn.shape[1] - 1)] > 0.1))


def test_a_grown_layer_opens_with_each_step_readable_and_switches(window, grown_run, qtbot):
    open_runs(window, [grown_run])
    d = window.distributions
    show_panel(window, qtbot, d)
    qtbot.waitUntil(lambda: d.hist_image_data.shape == (HIST_DISPLAY_BINS, 2), timeout=60_000)
    shoot(window, "distributions_each_step.png")
    assert d.hist_scale.currentText() == SCALE_EACH
    assert _rows_used(d, 50) >= READABLE_ROWS and _rows_used(d, 250) >= READABLE_ROWS // 2
    assert "max |value|" in d.hist_title.text() and "step\u00a00" in d.hist_title.text()
    assert d.hist_plot.getAxis("left").labelText.startswith("value ÷")
    d.hist_scale.setCurrentText(SCALE_SHARED)
    d.hist_scale.activated.emit(d.hist_scale.currentIndex())      # as a user's pick
    qtbot.waitUntil(lambda: d.hist_plot.getAxis("left").labelText == "value", timeout=10_000)
    assert _rows_used(d, 50) <= 3                                 # one value axis: step 0 is a line
    d.hist_layer.setCurrentIndex(2)                               # the user's pick holds for other layers
    qtbot.waitUntil(lambda: not d.reading() and d._hist_shown[2] == 2, timeout=60_000)
    assert d.hist_scale.currentText() == SCALE_SHARED


def test_similar_ranges_keep_one_value_axis(window, tmp_path, qtbot):
    open_runs(window, [make_run(tmp_path / "steady.h5", n_steps=1000, n_layers=2)])
    d = window.distributions
    show_panel(window, qtbot, d)
    qtbot.waitUntil(lambda: d.hist_image_data.shape[1] == 10, timeout=60_000)
    assert d.hist_scale.currentText() == SCALE_SHARED
    assert d.hist_plot.getAxis("left").labelText == "value"
