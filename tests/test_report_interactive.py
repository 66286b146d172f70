"""The HTML report's plots take a hover readout and a step zoom (trial14 L7: "static SVG, no
hover, no zoom"), and the page stays one offline file.

What Python can check: each line plot's figure carries exactly the points its SVG drew (the
min/max per pixel column, never the raw series), with its NaN/Inf runs, spans and circled
points; the page has our script once, allowed by its hash, and nothing that loads. The script's
behaviour was checked in headless Chromium (see the commit message); it is not run here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from html import unescape

import numpy as np
import pytest

from trainspect.app.report import export_report
from trainspect.app.report.svgplot import Line, PlotSpec, line_plot, line_plot_drawn
from tests.fixtures_runs import make_run


def _paths_in_data_group(svg: str) -> list[list[tuple[float, float]]]:
    """The vertices of every curve drawn in the plot's data group (a lone point: its circle)."""
    group = re.search(r'<g data-x="data">(.*?)</g>', svg, flags=re.S).group(1)
    out = []
    for m in re.finditer(r'<path d="M([^"]+)"|<circle cx="([^"]+)" cy="([^"]+)" r="1.8"', group):
        if m.group(1):
            out.append([tuple(float(v) for v in p.split()) for p in m.group(1).split(" L")])
        else:
            out.append([(float(m.group(2)), float(m.group(3)))])
    return out


def _to_px(data, x, y):
    left, top, pw, ph = data["frame"]
    x0, x1 = data["x"]
    y0, y1 = data["y"]
    v = np.log10(y) if data["log"] else np.asarray(y, float)
    return left + (np.asarray(x, float) - x0) / (x1 - x0) * pw, top + ph - (v - y0) / (y1 - y0) * ph


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("log_y", [False, True])
def test_embedded_points_are_the_drawn_points_spike_and_nan_included(seed, log_y):
    rng = np.random.default_rng(seed)
    x = np.arange(1_000_000, dtype=float)
    y = np.exp(rng.normal(0, 0.05, x.size)) * (2.0 * np.exp(-x / 2e5) + 0.1)
    spike = int(rng.integers(100_000, 800_000))
    y[spike] = 80.0
    y[900_000:900_040] = np.nan
    svg, data = line_plot_drawn([Line(x, y, "train/loss")], PlotSpec(width=700, log_y=log_y))
    assert svg == line_plot([Line(x, y, "train/loss")], PlotSpec(width=700, log_y=log_y))
    pieces = data["lines"][0]["pieces"]
    drawn = _paths_in_data_group(svg)
    assert len(pieces) == len(drawn) == 2            # the NaN run splits the curve
    for (px, py), vertices in zip(pieces, drawn):
        X, Y = _to_px(data, px, py)
        assert len(vertices) == len(px) <= 4 * data["frame"][2]      # the drawn points, not 1 M
        assert np.allclose(X, [v[0] for v in vertices], atol=0.011)
        assert np.allclose(Y, [v[1] for v in vertices], atol=0.011)
        assert set(px) <= set(range(1_000_000))                       # recorded steps
    xs = np.concatenate([p[0] for p in pieces])
    ys = np.concatenate([p[1] for p in pieces])
    assert ys.max() == 80.0 and xs[np.argmax(ys)] == spike         # the spike, at its step
    assert data["lines"][0]["bad"] == [[900_000.0, 900_039.0, "NaN"]]
    assert data["log"] is log_y


def test_spans_markers_and_lines_of_a_finding_travel_with_the_plot():
    x = np.arange(300, dtype=float)
    y = np.ones(300)
    y[150] = np.inf
    spec = PlotSpec(spans=[(140, 160)], markers=[(149.0, 1.0), (151.0, np.nan)], vlines=[(100.0, "restart")])
    svg, data = line_plot_drawn([Line(x, y)], spec)
    assert data["spans"] == [[140.0, 160.0]] and data["markers"] == [[149.0, 1.0]]
    assert data["vlines"] == [[100.0, "restart"]] and data["lines"][0]["bad"] == [[150.0, 150.0, "inf"]]
    json.dumps(data, allow_nan=False)                 # the page's JSON has no NaN


def test_nan_runs_of_a_line_nan_at_every_other_step_are_merged():
    x = np.arange(20_000, dtype=float)
    y = np.where(x % 2 == 0, 1.0, np.nan)
    svg, data = line_plot_drawn([Line(x, y)], PlotSpec(width=700))
    bad = data["lines"][0]["bad"]
    assert 1 <= len(bad) <= 2001 and bad[0][0] == 1.0 and bad[-1][1] == 19_999.0
    assert len(json.dumps(data)) < len(svg)           # no bigger than the drawing it describes


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("interactive")
    runs = [make_run(d / "a.h5", n_steps=3000, spike_at=1200, name="a"),
            make_run(d / "b.h5", n_steps=3000, name="b", config={"lr": 3e-3})]
    return export_report([str(r) for r in runs], d / "report.html").read_text(encoding="utf-8")


def test_the_page_has_our_script_once_allowed_by_its_hash(report):
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", report, flags=re.S)
    assert len(scripts) == 1 and scripts[0][0] == ""
    digest = base64.b64encode(hashlib.sha256(scripts[0][1].encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in report
    assert not re.search(r"\b(?:https?|ftp)://(?!www\.w3\.org/2000/svg\b)", report)     # loads nothing
    assert not re.search(r"""\b(?:src|href)\s*=\s*["'](?!#)""", report)
    assert "import(" not in scripts[0][1] and "fetch(" not in scripts[0][1]


def test_every_line_plot_carries_its_drawn_data_and_its_runs_zoom_group(report):
    figures = re.findall(r"<figure([^>]*)>(<svg.*?</svg>)", report, flags=re.S)
    line_plots = [(attrs, svg) for attrs, svg in figures if '<g data-x="data">' in svg]
    assert len(line_plots) >= 6
    groups = set()
    for attrs, svg in line_plots:
        data = json.loads(unescape(re.search(r'data-plot="([^"]*)"', attrs).group(1)))
        groups.add(re.search(r'data-zoom="([^"]*)"', attrs).group(1))
        drawn = _paths_in_data_group(svg)
        assert sum(len(p[0]) for ln in data["lines"] for p in ln["pieces"]) == sum(len(v) for v in drawn)
    assert {"run-0", "run-1", "comparison"} <= groups
    heatmaps = [attrs for attrs, svg in figures if '<g data-x="data">' not in svg]
    assert heatmaps and not any("data-plot" in a for a in heatmaps)     # heatmaps stay static
    # without scripts the page reads as before: the hint about hover and zoom stays hidden
    assert re.search(r'<p class="muted" id="plot-hint" hidden>', report)
