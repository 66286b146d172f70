"""Evidence marks on the plot of their own series, explained, and few (UX review trial14, M3).

A focused finding's evidence steps were drawn as dotted lines on *every* plot: the spike
finding's only clear line on the loss was at step 50, a gradient-norm spike where the loss had
none, and vanishing gradients drew about 25 unexplained lines across every plot. Now each mark
is on the plot of the series it was seen in, says what it marks (tooltip and plot title), and a
plot gets at most MAX_MARK_LINES of them (the nearest merge into a shaded group)."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.analysis.findings import Evidence, Finding  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402
from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


METRICS = ["train/loss", "sys/grad_norm", "sys/lr"]


@pytest.fixture
def shown(window, qtbot, tmp_path):
    path = make_run(tmp_path / "spiky.h5", n_steps=120, n_layers=0, spike_at=40,
                    metrics=("train/loss", "sys/grad_norm", "sys/lr"))
    open_runs(window, [path])
    window.view.set_combine_losses(False)
    window.view.set_metrics(METRICS)
    qtbot.waitUntil(lambda: all(m in window.scalars.plots for m in METRICS)
                    and all(c.n_points for c in window.scalars.curves.values()), timeout=WAIT_MS)
    return window


def spikes():
    return Finding(symptom="loss_spikes", severity="warning", title="loss spikes", first_step=40, last_step=49,
                   evidence=[Evidence(series="train/loss", text="train/loss jumped 8x its median", steps=[40, 49]),
                             Evidence(series="sys/grad_norm", text="the gradient norm jumped", steps=[40, 49, 50])])


def test_marks_are_drawn_only_on_the_plot_of_their_series_and_say_what_they_mark(shown, qtbot):
    window = shown
    window.view.focus_finding(spikes())
    panel = window.scalars
    assert panel.marked("train/loss") == pytest.approx([40, 49])        # the real spikes, at the highlight's edges too
    assert panel.marked("sys/grad_norm") == pytest.approx([40, 49, 50])
    assert panel.marked("sys/lr") == []                                 # no evidence there: no lines
    tips = panel.mark_tips("train/loss")
    assert tips[0].startswith("loss spikes at step 40") and "jumped 8x" in tips[0]
    assert "loss spikes" in panel._titles["train/loss"] and "40, 49" in panel._titles["train/loss"]
    assert "┆" not in panel._titles["sys/lr"]
    shoot(window, "ux3_marks_spikes.png")
    # another finding moves them: the old ones are gone
    window.view.focus_finding(Finding(symptom="no_progress", severity="warning", title="flat", first_step=0,
                                      last_step=119, evidence=[Evidence(series="sys/lr", text="lr", steps=[60])]))
    assert panel.marked("train/loss") == [] and panel.marked("sys/grad_norm") == []
    assert panel.marked("sys/lr") == pytest.approx([60])


def test_a_finding_with_dozens_of_marks_draws_a_few_merged_groups(shown, qtbot):
    from trainspect.app.gui.widgets.scalar_plots import MAX_MARK_LINES
    window = shown
    steps = list(range(0, 120, 5))            # 24 steps, like vanishing gradients' 20-25
    window.view.focus_finding(Finding(symptom="vanishing_gradients", severity="warning", title="vanishing",
                                      first_step=0, last_step=115,
                                      evidence=[Evidence(series="sys/grad_norm", text="tiny", steps=steps)]))
    panel = window.scalars
    marks = panel.marked("sys/grad_norm")
    assert 1 <= len(marks) <= MAX_MARK_LINES
    assert panel.marked("train/loss") == [] and panel.marked("sys/lr") == []
    tips = panel.mark_tips("sys/grad_norm")
    assert any("vanishing gradients at" in t and "steps:" in t for t in tips)   # a merged group says so
    shoot(window, "ux3_marks_many.png")
