"""The steps a clicked finding zooms the plots to stay inside the run: a finding at step 0 had
zoomed to steps -4..5, half of every plot empty (trial 16, screenshot of a bad-init run), and one
at the run's last step showed as many empty steps after it. A plot left with no line in the
zoom (val/acc, logged from step 63 on) says where its points are instead of showing bare axes."""
import numpy as np

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import Evidence, Finding  # noqa: E402
from trainspect.app.gui.model import finding_window  # noqa: E402
from trainspect.app.gui.widgets.scalar_plots import out_of_view_note  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402
from tests.test_app_step_weighted_smoothing import scalar_file  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


@pytest.mark.parametrize("span, last, window", [
    ((0, 0), 299, (0.0, 10.0)),          # step 0: slid right, its width kept
    ((2, 2), 299, (0.0, 10.0)),
    ((299, 299), 299, (289.0, 299.0)),   # the last step: slid left
    ((100, 200), 299, (90.0, 210.0)),    # inside the run: padded both sides, as before
    ((0, 299), 299, (0.0, 299.0)),       # the whole run: clamped to it
    ((0, 3), None, (0.0, 13.0)),         # last step unknown: only the floor at 0
    ((-3, -3), None, (-3.0, 7.0)),       # steps below 0 (none are recorded so, but keep them in view)
])
def test_the_window_is_padded_and_slid_inside_the_run(span, last, window):
    assert finding_window(span, last) == pytest.approx(window)


def test_a_window_covers_the_finding(): # several spans, each must stay fully in view
    for first in (0, 1, 7, 50, 290):
        for length in (0, 1, 9, 40):
            last = first + length
            lo, hi = finding_window((first, last), 299 if last <= 299 else None)
            assert lo <= first and hi >= last and lo >= 0


def test_clicking_a_finding_at_step_0_shows_no_negative_steps(window, tmp_path, qtbot):
    open_runs(window, [make_run(tmp_path / "init.h5", n_steps=300, n_layers=0)])
    window.advisor.wait()
    window.advisor.set_findings([Finding(symptom="loss_at_init_high", severity="warning", title="loss high at init",
                                         first_step=0, last_step=0,
                                         evidence=[Evidence(series="train/loss", text="7x ln C", steps=[0])])],
                                "1 finding")
    window.advisor.activate(0)
    assert window.view.step_range == pytest.approx((0.0, 10.0))
    plot = next(iter(window.scalars.plots.values()))

    def x_range():
        return plot.getViewBox().viewRange()[0]
    qtbot.waitUntil(lambda: x_range()[0] >= -0.5 and x_range()[1] >= 9.5, timeout=WAIT_MS)
    assert x_range()[1] <= 10.5                  # still zoomed to the finding, not the whole run


def test_the_out_of_view_note_names_where_the_points_are():
    same = (lambda x: x)
    assert out_of_view_note([(63, 639)], (0, 10), same) == "no points in view: they start at step 63"
    assert out_of_view_note([(0, 100), None], (150, 200), same) == "no points in view: they end at step 100"
    assert out_of_view_note([(63, 639), (0, 5)], (0, 10), same) == ""      # one line in view: nothing to say
    assert out_of_view_note([(0, 50)], (10, 20), same) == ""               # a line between two points crosses it
    assert out_of_view_note([(63, 639)], None, same) == ""                 # not zoomed
    assert out_of_view_note([None], (0, 10), same) == ""                   # no data: plot_note's case


def test_a_zoom_before_a_metrics_first_point_says_where_its_points_are(window, tmp_path, qtbot):
    steps = np.arange(640)
    val = np.arange(63, 640, 64)
    path = scalar_file(tmp_path / "epochs.h5", {"train/loss": (steps, 2.3 * np.exp(-steps / 200.0)),
                                                 "val/acc": (val, np.linspace(0.1, 0.9, len(val)))})
    open_runs(window, [path])
    window.view.set_metrics(["train/loss", "val/acc"])
    qtbot.waitUntil(lambda: all(m in window.scalars.plots for m in ["train/loss", "val/acc"])
                    and all(c.n_points for c in window.scalars.curves.values()), timeout=WAIT_MS)
    titles = window.scalars._titles
    assert "no points in view" not in titles["val/acc"]             # the whole run: its line is there
    window.view.focus_finding(Finding(symptom="loss_at_init_high", severity="warning", title="high",
                                      first_step=0, last_step=0), last_step=639)
    qtbot.waitUntil(lambda: "they start at step 63" in titles["val/acc"], timeout=WAIT_MS)
    assert "no points in view" not in titles["train/loss"]
    shoot(window, "finding_window_out_of_view.png")
    window.view.reset_view()
    qtbot.waitUntil(lambda: "no points in view" not in titles["val/acc"], timeout=WAIT_MS)
