"""The marks on a report's evidence plots are explained (trial14 UX M3): a key names the shaded
span and the circles, and the caption says which steps are circled. A sparse series' "5 values
before" a NaN at step 150 were circled at steps 96-100 with no word that they are that far back."""
import math

import numpy as np

from trainspect.analysis import open_run
from trainspect.analysis.findings import Evidence, Finding
from trainspect.app.report.content import finding_figures
from trainspect.app.report.svgplot import Line, PlotSpec, line_plot
from trainspect.recorder import Recorder


def _sparse_run(path):
    """``aux`` every step to 100, then every 50 steps (NaN at 150), as sys/input_mean was recorded."""
    with Recorder(path, name="sparse") as rec:
        for step in range(300):
            rec.log({"train/loss": 1.0 / (step + 1) if step < 150 else math.nan}, step=step)
            if step <= 100 or step % 50 == 0:
                rec.log({"aux": math.sin(step) if step < 150 else math.nan}, step=step)
    return path


def test_a_nan_findings_circles_are_named_by_their_steps(tmp_path):
    with open_run(_sparse_run(tmp_path / "sparse.h5")) as run:
        aux = run.scalar("aux")
        before = [i for i in range(len(aux.steps)) if aux.steps[i] < 150][-5:]
        ev = Evidence("aux", "aux is nan at step 150 (the 5 values before: ...)",
                      steps=[int(aux.steps[i]) for i in before] + [150],
                      values=[float(aux.values[i]) for i in before] + [math.nan])
        finding = Finding("nan_inf", "error", "non-finite values", 150, 299, evidence=[ev])
        fig = finding_figures(run, finding)[0]
    assert "the last 5 values recorded before step 150 (steps 96–100)" in fig.caption, fig.caption
    assert fig.svg.count("<circle") >= 5 + 1                      # the 5 points and the key's circle
    assert "evidence</text>" in fig.svg and "finding&#x27;s steps</text>" in fig.svg


def test_a_plot_without_marks_has_no_key():
    x = np.arange(50.0)
    plain = line_plot([Line(x, x)])
    assert "evidence</text>" not in plain and "finding" not in plain
    shaded = line_plot([Line(x, x)], PlotSpec(spans=[(10, 20)]))
    assert "finding&#x27;s steps</text>" in shaded and "evidence</text>" not in shaded


def test_captions_name_the_circled_steps():
    from trainspect.app.report.content import marker_caption, step_ranges

    assert step_ranges([96, 97, 98, 99, 100, 150]) == "96–100, 150"
    assert step_ranges([170_000]) == "170,000"
    assert marker_caption("x", [(40, 1.0), (49, 2.0)], [(40, 49)]) == "x. Circled: the evidence values at steps 40, 49."
    assert marker_caption("x", [], [(40, 49)]) == "x"
