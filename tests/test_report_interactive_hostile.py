"""The HTML report's embedded plot data and its one script under hostile names.

Metric names, run names and config values come from the run file: ``</script>``, ``<img
onerror>``, quotes, ``]]>``, ``<!--``, U+2028/U+2029 and control characters must stay text in
the SVG, in the data each line plot carries for the hover readout (``data-plot``) and in the
PDF. A control character in a metric name made every plot of it invalid XML: the PDF report
failed ("a report plot is not valid SVG").
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from trainspect.app.report import export_report
from tests.fixtures_runs import make_run

PAYLOAD = "<img src=x onerror=document.title='PWNED'>"
METRICS = ("train/loss</script>" + PAYLOAD[:40],            # names are at most 64 bytes
           "val/loss\"'><svg onload=alert(1)>]]>",
           "acc\u2028\u2029\x01\x1b\x7f<!--\u202e")
RUN_NAME = "run</script><script>document.title='PWNED'</script>\u2028" + "L" * 300
CONFIG = {"note": "</script>" + PAYLOAD, "k\u2029": "]]>\x02"}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_report")
    runs = [make_run(d / "a.h5", n_steps=2000, spike_at=900, metrics=METRICS, name=RUN_NAME, config=CONFIG),
            make_run(d / "b.h5", n_steps=2000, metrics=METRICS, name="b\"><img src=x onerror=alert(2)>")]
    html = export_report([str(r) for r in runs], d / "report.html")
    return d, [str(r) for r in runs], html


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def test_only_the_hashed_script_and_no_injected_markup(pages):
    _, _, out = pages
    html = out.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert len(page.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode("utf-8")).digest()).decode()
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1
    script_src = re.search(r"script-src ([^;]*)", csp[0]).group(1).split()
    assert script_src == [f"'sha256-{digest}'"]                 # no 'unsafe-inline', no other source
    assert "default-src 'none'" in csp[0]
    assert not [t for t, _ in page.tags if t in ("img", "iframe", "object", "embed", "base", "link")]
    assert not [(t, k) for t, a in page.tags for k in a if k.startswith("on")]
    labels = []
    for t, a in page.tags:
        if "data-plot" in a:
            data = json.loads(a["data-plot"])                   # every plot's data parses
            labels += [ln["label"] for ln in data["lines"]] + [data["title"]]
    assert any("</script>" in s for s in labels)                # kept as text, for the readout
    assert not [s for s in labels if re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202e]", s)]


def test_every_plot_is_xml_with_no_control_characters(pages):
    _, _, out = pages
    html = out.read_text(encoding="utf-8")
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) >= 6
    for svg in svgs:
        ET.fromstring(svg)                  # the PDF renders these with an XML parser
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", html)
    assert "acc\u2028\u2029\\x01\\x1b\\x7f&lt;!--" in html     # the name, its controls shown as escapes


def test_the_pdf_report_of_hostile_names_is_written(pages, tmp_path):
    pytest.importorskip("PySide6.QtSvg")
    _, runs, _ = pages
    out = export_report(runs, tmp_path / "report.pdf")
    assert out.read_bytes()[:5] == b"%PDF-"


def test_in_chromium_the_script_runs_and_no_payload_does(pages):
    exe = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if exe is None:
        pytest.skip("no headless Chromium")
    d, _, out = pages
    dom = subprocess.run([exe, "--no-sandbox", "--disable-gpu", "--headless", "--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "<figure" in dom, "Chromium did not render the page"
    figures = len(re.findall(r"<figure[^>]*data-plot", dom))
    assert figures >= 6
    # our script ran on every line plot (it adds one clip path to each), the payloads did not
    assert len(re.findall(r'id="ts-clip-\d+"', dom)) == figures
    assert re.search(r'<p class="muted" id="plot-hint">', dom)          # unhidden by the script
    assert re.search(r"<title>(.*?)</title>", dom, flags=re.S).group(1).strip() != "PWNED"
    assert "<img" not in dom


@pytest.mark.parametrize("log_y", [False, True, "auto"])
@pytest.mark.parametrize("values", [
    [1.7e308, -1.7e308] * 50,                                  # the range overflows to Inf
    [1e308] * 100,                                             # 10 ** 309 for a log tick label
    [5e-324] * 50 + [1e-323] * 50,                             # a range of subnormals: 10 ** -324 == 0
    [1e308] * 50 + [-1e308] * 50 + [float("inf"), float("nan"), -float("inf")],
])
def test_float64_extremes_draw_a_plot_and_its_data(values, log_y):
    """A float64 metric near its limits (a blow-up logged in double) made the report fail:
    'cannot convert float NaN to integer', OverflowError, 'math domain error'."""
    from trainspect.app.report.svgplot import Line, PlotSpec, line_plot_drawn

    y = np.asarray(values, float)
    svg, data = line_plot_drawn([Line(np.arange(y.size, dtype=float), y, "train/loss")], PlotSpec(log_y=log_y))
    ET.fromstring(svg)
    json.dumps(data, allow_nan=False)
    assert data["lines"][0]["pieces"]                        # something was drawn
    if not np.isfinite(y).all():                             # Inf/NaN still marked as such
        assert data["lines"][0]["bad"]


def test_a_run_that_blew_up_in_double_precision_gets_its_reports(tmp_path):
    from trainspect.recorder import Recorder

    with Recorder(tmp_path / "blowup.h5") as rec:
        for i in range(200):
            v = 1.5 * 10.0 ** min(307, 2 * i) if i < 160 else float("inf")
            rec.log({"train/loss": v, "val/loss": -v if i % 2 else v}, step=i)
    html = export_report([str(tmp_path / "blowup.h5")], tmp_path / "r.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<figure[^>]*data-plot", html)) >= 1
    pytest.importorskip("PySide6.QtSvg")
    assert export_report([str(tmp_path / "blowup.h5")], tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
