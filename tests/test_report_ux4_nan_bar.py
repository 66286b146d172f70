"""A run of NaN/Inf values is one solid red bar on a report plot (trial14 UX L7: 150 NaN steps were
drawn as a tick per pixel column, a dashed bar that read as 'now and then')."""
import re

import numpy as np

from trainspect.app.report.svgplot import NONFINITE_COLOR, Line, line_plot


def _bars(svg):
    return re.findall(rf'<(?:rect|line)[^>]*(?:fill|stroke)="{NONFINITE_COLOR}"[^>]*/>', svg)


def test_a_run_of_nans_is_one_bar_and_two_runs_are_two():
    x = np.arange(300.0)
    y = np.cos(x / 30)
    y[150:] = np.nan
    svg = line_plot([Line(x, y)])
    assert len(_bars(svg)) == 1 and "NaN/Inf from step 150" in svg
    y[60:70] = np.inf
    assert len(_bars(line_plot([Line(x, y)]))) == 2


def test_the_runs_of_two_lines_that_overlap_are_one_bar():
    x = np.arange(300.0)
    a, b = np.cos(x / 30), np.sin(x / 30)
    a[150:] = np.nan
    b[::10][16:] = np.nan                  # a sparse series: NaN from step 160, every 10 steps
    b[161:] = np.nan
    assert len(_bars(line_plot([Line(x, a), Line(x[::10], b[::10])]))) == 1
