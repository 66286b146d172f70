"""Training and validation loss on one axis (UX review trial14, M5).

Every metric had its own plot with its own y scale: train/loss (0-2) and val/loss (2-8) of an
overfitting run were two panels, so the gap the overfitting finding is about was never drawn as
a gap. The report's "Losses" plot overlays them. Now a run's training loss (solid) and
validation loss (dashed, with markers) share one "loss" plot; the individual metrics stay in the
metric list, and "train + val loss on one plot" off puts each on its own plot again."""
import os

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402

from trainspect.analysis import Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)
SHOTS = os.environ.get("TRAINSPECT_UX_SHOTS")     # a folder: the test leaves its screenshots there


def shoot(window, name):
    if SHOTS:
        from trainspect.app.gui.main_window import render_screenshot
        render_screenshot(window, os.path.join(SHOTS, name))


def distinct_plots(panel):
    return list(dict.fromkeys(panel.plots.values()))


def loaded(window, qtbot, paths):
    entries = open_runs(window, paths)
    panel = window.scalars
    qtbot.waitUntil(lambda: all((m, e.key) in panel.curves and panel.curves[(m, e.key)].n_points > 0
                                for e in entries for m in ("train/loss", "val/loss")), timeout=WAIT_MS)
    return entries, panel


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "overfit.h5", n_steps=300, n_layers=0, val_every=20)


def test_train_and_val_loss_share_one_plot(window, qtbot, run):
    (entry,), panel = loaded(window, qtbot, [run])
    assert {"train/loss", "val/loss"} <= set(window.view.metrics)     # both still individual metrics
    plot = panel.plots["train/loss"]
    assert panel.plots["val/loss"] is plot
    assert panel.members("train/loss") == ["train/loss", "val/loss"]
    assert len(distinct_plots(panel)) == len(window.view.metrics) - 1
    title = plot.titleLabel.text
    assert "train/loss" in title and "val/loss" in title and "solid" in title and "dashed" in title
    train, val = panel.curves[("train/loss", entry.key)], panel.curves[("val/loss", entry.key)]
    assert train.plot is plot and val.plot is plot
    # train solid, val dashed with markers at its 15 evaluations
    assert train.smooth.opts["pen"].style() == Qt.SolidLine and train.raw.opts["pen"].style() == Qt.SolidLine
    assert val.raw.opts["pen"].style() == Qt.DashLine
    assert val.raw.opts["symbol"] == "o"
    assert train.raw.opts["symbol"] is None
    # One run: the readout gives both values on the one plot.
    text = panel.show_crosshair(100.0, "train/loss")
    assert "train/loss" in text and "val/loss" in text
    # The mouse on the shared plot lists the metric whose curve is nearest it.
    vb = plot.getViewBox()
    qtbot.waitUntil(lambda: vb.width() > 100, timeout=WAIT_MS)
    for curve in (train, val):
        step, y, _ = curve.value_at(250.0)
        assert panel._nearest_member("train/loss", 250.0, y) == curve.metric
    shoot(window, "ux2_losses_combined.png")

    # Off: each metric on its own plot, drawn as before.
    panel.combine_check.setChecked(False)
    qtbot.waitUntil(lambda: panel.plots.get("val/loss") is not None
                    and panel.plots["val/loss"] is not panel.plots["train/loss"], timeout=WAIT_MS)
    assert len(distinct_plots(panel)) == len(window.view.metrics)
    qtbot.waitUntil(lambda: panel.curves[("val/loss", entry.key)].n_points > 0, timeout=WAIT_MS)
    assert panel.curves[("val/loss", entry.key)].raw.opts["pen"].style() == Qt.SolidLine
    assert panel.plots["train/loss"].titleLabel.text == "train/loss"

    # On again; a loss alone (val unticked) is a plot of its own.
    panel.combine_check.setChecked(True)
    assert panel.plots["val/loss"] is panel.plots["train/loss"]
    window.view.toggle_metric("val/loss", False)
    assert "val/loss" not in panel.plots and panel.members("train/loss") == ["train/loss"]
    window.view.toggle_metric("val/loss", True)
    assert panel.plots["val/loss"] is panel.plots["train/loss"]


def test_overfitting_focus_shows_the_loss_plot(window, qtbot, run):
    (entry,), panel = loaded(window, qtbot, [run])
    # The user had the losses apart and val/loss not plotted at all.
    window.view.set_combine_losses(False)
    window.view.toggle_metric("val/loss", False)
    assert "val/loss" not in panel.plots
    finding = Finding(symptom="overfitting", severity="warning", title="val/loss rose while train/loss fell",
                      first_step=0, last_step=280,
                      evidence=[Evidence(series="val/loss", text="val/loss rose"),
                                Evidence(series="train/loss", text="train/loss fell")])
    window.advisor.wait()
    window.advisor.set_findings([finding], "1 finding")
    window.advisor.activate(0)
    qtbot.waitUntil(lambda: panel.plots.get("val/loss") is not None, timeout=WAIT_MS)
    assert panel.plots["val/loss"] is panel.plots["train/loss"]
    assert window.view.combine_losses
    qtbot.waitUntil(lambda: panel.curves[("val/loss", entry.key)].n_points > 0, timeout=WAIT_MS)
    shoot(window, "ux2_overfit_focus.png")


def test_each_run_pairs_its_own_losses(window, qtbot, tmp_path):
    """Runs of a sweep overlay on the one loss plot; a run with other role names joins it."""
    a = make_run(tmp_path / "a.h5", n_steps=200, n_layers=0, seed=1)
    b = make_run(tmp_path / "b.h5", n_steps=200, n_layers=0, seed=2)
    entries, panel = loaded(window, qtbot, [a, b])
    plot = panel.plots["train/loss"]
    assert sum(1 for c in panel.curves.values() if c.plot is plot) == 4
    assert all(panel.curves[("val/loss", e.key)].dashed for e in entries)
    assert not any(panel.curves[("train/loss", e.key)].dashed for e in entries)
    other = make_run(tmp_path / "c.h5", n_steps=200, n_layers=0, metrics=("train_loss", "val_loss"))
    c, = open_runs(window, [other])
    window.view.set_metrics(window.view.metrics + ["train_loss", "val_loss"])
    qtbot.waitUntil(lambda: ("val_loss", c.key) in panel.curves, timeout=WAIT_MS)
    assert panel.plots["val_loss"] is panel.plots["train/loss"]
    assert panel.curves[("val_loss", c.key)].dashed
