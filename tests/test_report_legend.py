"""Legend entries of report plots do not run into each other.

Four columns of ~160 px took labels of 34 characters (~220 px): two runs named like
resnet18_lr0.1_bs128_wd5e-4_seed0 overlapped, unreadable, in the HTML and the PDF.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from trainspect.app.report import svgplot
from trainspect.app.report.svgplot import LEGEND_CHAR_PX, Line, PlotSpec


@pytest.mark.parametrize("names", [["resnet18_lr0.1_bs128_wd5e-4_seed0", "resnet18_lr0.01_bs128_wd5e-4_seed0"],
                                   [f"run_{i}_with_a_rather_long_name_of_the_sweep" for i in range(5)],
                                   ["a", "b", "c", "d", "e", "f"]])
def test_legend_entries_do_not_overlap(names):
    steps = np.arange(50)
    lines = [Line(steps, 1.0 / (steps + 1 + i), name, svgplot.PALETTE[i % len(svgplot.PALETTE)])
             for i, name in enumerate(names)]
    svg = svgplot.line_plot(lines, PlotSpec(title="Losses"))
    entries = [(float(x), float(y), text) for x, y, text in
               re.findall(r'<text x="([\d.]+)" y="([\d.]+)" fill="#333">([^<]*)</text>', svg)][-len(names):]
    assert len(entries) == len(names)
    rows: dict = {}
    for x, y, text in entries:
        rows.setdefault(y, []).append((x, text))
    for row in rows.values():
        row.sort()
        for (x, text), (next_x, _) in itertools.pairwise(row):
            assert x + LEGEND_CHAR_PX * len(text) < next_x - 18, (text, x, next_x)
    if len(names[0]) <= 34:
        assert {text for _, _, text in entries} == set(names)   # nothing cut that fits
