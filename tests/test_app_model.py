"""The app's models without any widget: what the widgets are built from and listen to."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("PySide6")

from trainspect.analysis import Evidence, Finding  # noqa: E402
from trainspect.app.gui.model import PALETTE, RunsModel, ViewState, default_metrics  # noqa: E402
from tests.fixtures_runs import make_corrupt_file, make_run  # noqa: E402


def test_model_layer_imports_no_widgets_no_h5py_no_torch():
    code = ("import sys, trainspect.app.gui.model, trainspect.app.lod, trainspect.app.layer_data, trainspect.app.gui.advisor; "
            "print(sorted(m for m in ('PySide6.QtWidgets', 'pyqtgraph', 'h5py', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_model_open_colours_current_and_remove(qtbot, tmp_path):
    paths = [make_run(tmp_path / f"r{i}.h5", n_steps=100, n_layers=1, seed=i) for i in range(3)]
    model = RunsModel()
    with qtbot.waitSignals([model.runAdded, model.currentChanged]):
        a = model.open(paths[0])
    b = model.open(paths[1])
    assert model.open(paths[0]) is a and len(model) == 2       # opening twice selects, not duplicates
    assert model.current is a
    assert (a.color, b.color) == PALETTE[:2]
    with qtbot.waitSignal(model.runRemoved):
        model.remove(a)
    assert model.current is b and a.run._f is None
    c = model.open(paths[2])
    assert c.color == PALETTE[0]                                  # freed colour is reused
    assert model.metric_names() == ["train/loss", "val/loss", "train/acc"]
    model.close_all()
    assert len(model) == 0 and model.current is None


def test_runs_model_emits_errors_instead_of_raising(qtbot, tmp_path):
    model = RunsModel()
    bad = make_corrupt_file(tmp_path / "bad.h5")
    with qtbot.waitSignal(model.errorOccurred) as sig:
        assert model.open(bad) is None
    path, message = sig.args
    assert path == str(bad) and "bad.h5" in message
    assert len(model) == 0


def test_poll_reports_new_rows_that_the_run_then_reads(qtbot, tmp_path):
    from trainspect.recorder.h5file import RunFileWriter

    w = RunFileWriter(tmp_path / "live.h5")
    w.start({"name": "live"})
    w.add_tags(["loss"])
    w.append_scalars(np.arange(10), np.zeros(10), np.ones(10), np.arange(10.0))
    w.flush(9)
    try:
        model = RunsModel()
        entry = model.open(tmp_path / "live.h5")
        assert len(entry.run.scalar("loss")) == 10
        assert model.poll() == 0
        w.append_scalars(np.arange(10, 15), np.zeros(5), np.ones(5), np.arange(10.0, 15.0))
        w.flush(14)
        with qtbot.waitSignal(model.runUpdated) as sig:
            assert model.poll() == 5
        assert sig.args == [entry, 5]
        assert len(entry.run.scalar("loss")) == 15
        rows, series = entry.run.scalar_rows(["loss"], 10)["loss"]   # what the plots read
        assert rows.tolist() == list(range(10, 15)) and series.steps.tolist() == list(range(10, 15))
    finally:
        w.close()


def test_default_metrics_prefer_losses_and_skip_sys():
    names = ["sys/lr", "train/acc", "val/loss", "sys/grad_norm", "train/loss", "a", "b", "c"]
    assert default_metrics(names) == ["train/loss", "val/loss", "train/acc", "a"]
    assert default_metrics(["sys/lr", "sys/grad_norm", "sys/step_time"]) == ["sys/grad_norm", "sys/lr"]


def test_view_state_validates_and_signals(qtbot):
    v = ViewState()
    with qtbot.waitSignal(v.xModeChanged):
        v.cycle_x_mode()
    assert v.x_mode == "wall"
    with pytest.raises(ValueError, match="x axis"):
        v.set_x_mode("epoch")
    with pytest.raises(ValueError, match="smoothing"):
        v.set_smoothing(1.5)
    v.toggle_metric("loss", True)
    v.toggle_metric("acc", True)
    v.toggle_metric("loss", False)
    assert v.metrics == ["acc"]


def test_focus_finding_sets_span_range_stat_and_layers(qtbot):
    v = ViewState()
    f = Finding(symptom="dead_units", severity="warning", title="dead ReLUs", first_step=100, last_step=300,
                layers=["act1"], evidence=[Evidence(series="act_dead_frac", text="80% dead", layer="act1")])
    with qtbot.waitSignal(v.findingFocused):
        v.focus_finding(f, layer_stats={"act_dead_frac": None})
    assert v.highlight == (100.0, 300.0)
    assert v.step_range == (80.0, 320.0)
    assert v.heatmap_stat == "act_dead_frac" and v.selected_layers == ["act1"]
    v.reset_view()
    assert v.step_range is None
