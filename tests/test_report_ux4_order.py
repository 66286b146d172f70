"""A run's section reads overview first (trial14 UX L7): its summary, its findings in one line
each, then the key plots (the loss curves were last, on page 3 of 3), then the config and each
finding in full. Step axes read as steps (50k), not 5e4."""
import re

import numpy as np
import pytest

from tests.fixtures_runs import make_run
from trainspect.app.report.content import build_report, open_runs
from trainspect.app.report.html import render_html


def _report(path):
    runs = open_runs([path])
    try:
        return build_report(runs)
    finally:
        runs[0].close()


@pytest.fixture
def spiky(tmp_path):
    return make_run(tmp_path / "spiky.h5", n_steps=400, n_layers=2, spike_at=200, spike_factor=60.0)


def test_html_section_puts_the_key_plots_under_the_summary_and_the_findings_at_a_glance(spiky):
    report = _report(spiky)
    assert report.runs[0].findings, "the planted spike should give a finding"
    html = render_html(report)
    summary = html.index('<table class="kv">')
    at_a_glance = html.index("Findings at a glance")
    plots = html.index("<h3>Key plots</h3>")
    details = html.index("<h3>Advisor findings")
    assert summary < at_a_glance < plots < details
    assert html.index("<h3>Config</h3>") > plots
    for j, f in enumerate(report.runs[0].findings):      # each line links to its finding in full
        assert f'href="#run-0-finding-{j}"' in html[at_a_glance:plots] and f.title in html[at_a_glance:plots]


def test_pdf_section_puts_the_key_plots_before_the_findings(spiky):
    pytest.importorskip("PySide6.QtSvg")
    from trainspect.app.gui.pdf import Svg, report_blocks

    report = _report(spiky)
    blocks = report_blocks(report)
    texts = [getattr(b, "html", "") for b in blocks]
    plots = next(i for i, t in enumerate(texts) if "Key plots" in t)
    details = next(i for i, t in enumerate(texts) if "Advisor findings" in t)
    assert next(i for i, t in enumerate(texts) if "Findings at a glance" in t) < plots < details
    losses = report.runs[0].figures[0].svg
    assert any(isinstance(b, Svg) and b.svg == losses for b in blocks[plots:details])


def test_step_axes_read_as_steps():
    from trainspect.app.report.svgplot import Line, line_plot

    x = np.arange(0, 200_001, 100, dtype=float)
    svg = line_plot([Line(x, np.cos(x / 1e4))])
    ticks = re.findall(r'text-anchor="middle" fill="#444">([^<]+)<', svg)
    assert "50k" in ticks and "100k" in ticks, ticks
    assert not any("e" in t for t in ticks), ticks
