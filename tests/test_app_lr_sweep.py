"""An LR range test in the app: loss against LR on a log x axis with the suggestion marked, the
advisor's LR fix quoting an open sweep (or saying how to run one), and short validation
series drawn raw (offscreen Qt)."""
import math

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import open_runs, recorded  # noqa: E402


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real LR range test of a small digits MLP: (path, LRRangeResult)."""
    from tests.fixtures_runs import digits_lr_sweep

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("sweep") / "lr_sweep.h5"
    result = digits_lr_sweep(path, steps=80)
    assert result.lr is not None, result.reason
    return path, result


def lr_fix_texts(window, symptom):
    window.advisor.wait()
    finding = next((f for f in window.advisor.findings if f.symptom == symptom), None)
    assert finding is not None, [f.symptom for f in window.advisor.findings]
    return [getattr(x, "text", str(x)) for x in finding.fixes]


def test_sweep_is_plotted_against_lr_with_the_suggestion_marked(window, sweep):
    path, result = sweep
    (entry,) = open_runs(window, [path])
    panel = window.lr_sweep
    assert window.tabs.currentWidget() is panel           # a sweep opens on its own tab
    assert panel.plot.getAxis("bottom").logMode and not panel.plot.getAxis("left").logMode
    x, y = panel.raw.getOriginalDataset()
    np.testing.assert_allclose(x, result.lrs)
    np.testing.assert_allclose(y, result.losses)
    np.testing.assert_allclose(panel.smooth.getOriginalDataset()[1], result.smoothed)
    # pyqtgraph places items of a log axis at log10(x)
    assert panel.suggested_line.isVisible()
    assert panel.suggested_line.value() == pytest.approx(math.log10(result.lr))
    assert panel.min_line.value() == pytest.approx(math.log10(result.min_loss_lr))
    assert f"{result.lr:.3g}" in panel.caption.text()
    # the advisor does not diagnose a sweep (it diverges on purpose): it gives the suggestion
    window.advisor.wait()
    assert window.advisor.findings == []
    assert "LR range test" in window.advisor.status.text() and f"{result.lr:.3g}" in window.advisor.status.text()


def test_without_a_sweep_the_tab_says_how_to_run_one(window, tmp_path):
    open_runs(window, [make_run(tmp_path / "plain.h5", n_steps=300, n_layers=1)])
    panel = window.lr_sweep
    window.tabs.setCurrentWidget(panel)
    assert panel.sweep is None and "lr_range_test(model, optimizer" in panel.message.text()
    assert panel.raw.getOriginalDataset()[0] is None or len(panel.raw.getOriginalDataset()[0]) == 0
    assert panel.message.isVisible() and not panel.canvas.isVisible()   # no empty axes with a legend


def test_lr_fix_says_how_to_run_the_test_then_quotes_an_open_sweep(window, scenario_runs, sweep):
    path, result = sweep
    (run,) = open_runs(window, [scenario_runs.path("lr_too_low")])
    fixes = lr_fix_texts(window, "no_progress")
    assert any("lr_range_test(model, optimizer, batches, train_step" in t for t in fixes), fixes
    open_runs(window, [path])                         # the sweep opened beside the run ...
    window.runs.set_current(run)
    fixes = lr_fix_texts(window, "no_progress")       # ... is quoted in the LR fix
    assert any(f"set the LR to {result.lr:.3g}" in t for t in fixes), fixes
    window.runs.remove(next(e for e in window.runs.runs() if e.path == path))
    fixes = lr_fix_texts(window, "no_progress")       # closed again: back to how to run one
    assert not any("set the LR to" in t for t in fixes), fixes


def test_a_short_validation_series_is_drawn_raw(window, tmp_path):
    # 2000 training steps, validation every 500: 4 points. Their EMA lagged behind the last one.
    path = make_run(tmp_path / "sparse_val.h5", n_steps=2000, metrics=("train/loss", "val/loss"), n_layers=0,
                    val_every=500)
    (entry,) = open_runs(window, [path])
    window.view.set_metrics(["train/loss", "val/loss"])
    val = window.scalars.curves[("val/loss", entry.key)]
    train = window.scalars.curves[("train/loss", entry.key)]
    assert val.n_points == 4
    assert not val.smooth.isVisible() and val.raw.opts["symbol"] == "o"
    assert val.raw.opts["pen"].color().alpha() == 255
    values = recorded(entry, "val/loss").values
    for step, value in zip(recorded(entry, "val/loss").steps, values):
        assert val.value_at(step)[1:] == (value, value)               # hover shows the value itself
    assert train.smooth.isVisible() and train.raw.opts["symbol"] is None
