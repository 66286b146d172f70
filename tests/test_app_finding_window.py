"""The steps a clicked finding zooms the plots to stay inside the run: a finding at step 0 had
zoomed to steps -4..5, half of every plot empty (trial 16, screenshot of a bad-init run), and one
at the run's last step showed as many empty steps after it."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis import Evidence, Finding  # noqa: E402
from trainspect.app.gui.model import finding_window  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs  # noqa: E402

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
