"""The HTML report's hover and zoom in a real browser (headless Chromium through Playwright).

Skipped where Playwright or a Chromium is not installed (``pip install playwright`` and
``playwright install chromium``, or Debian's ``chromium-headless-shell``).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from trainspect.app.report import export_report

sync_api = pytest.importorskip("playwright.sync_api")

SPIKE, NAN_FROM, NAN_TO, STEPS = 31_415, 70_000, 70_019, 100_000


def _chromium(p):
    for exe in (None, shutil.which("chromium-headless-shell"), shutil.which("chromium")):
        try:
            return p.chromium.launch(executable_path=exe) if exe else p.chromium.launch()
        except Exception:       # Playwright's own browser not downloaded: try the system's
            continue
    pytest.skip("no Chromium for Playwright")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from trainspect import Recorder

    d = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(0)
    loss = 2.0 * np.exp(-np.arange(STEPS) / 3e4) + 0.1 + 0.02 * rng.standard_normal(STEPS)
    loss[SPIKE] = 50.0
    loss[NAN_FROM:NAN_TO + 1] = np.nan
    with Recorder(d / "long.h5", name="long") as rec:
        for s in range(STEPS):
            rec.log({"train/loss": float(loss[s]), "lr": 1e-3}, step=s)
    return export_report([str(d / "long.h5")], d / "long.html")


def _geometry(fig):
    svg = fig.locator("svg")
    box = svg.bounding_box()
    data = json.loads(fig.get_attribute("data-plot"))
    scale = box["width"] / float(svg.get_attribute("width"))
    left, top, pw, ph = data["frame"]

    def at(step, frac_y, view):
        return (box["x"] + (left + (step - view[0]) / (view[1] - view[0]) * pw) * scale,
                box["y"] + (top + frac_y * ph) * scale)
    return data, at


def _readout(fig):
    return fig.locator("svg > g[pointer-events] text").all_text_contents()


def test_hover_zoom_and_reset_in_chromium(report):
    with sync_api.sync_playwright() as p:
        browser = _chromium(p)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        assert page.locator("#plot-hint").is_visible()
        losses = page.locator("figure[data-plot]").first
        losses.scroll_into_view_if_needed()
        data, at = _geometry(losses)
        full = data["x"]
        page.mouse.move(*at(SPIKE, 0.05, full))              # the top of the spike's pixel column
        assert _readout(losses)[:2] == [f"step {SPIKE:,}", "train/loss: 50"]
        page.mouse.move(*at((NAN_FROM + NAN_TO) / 2, 0.5, full))
        assert f"train/loss: NaN at steps {NAN_FROM:,}\u2013{NAN_TO:,}" in _readout(losses)
        # drag across 60k..80k: this plot and the run's other plots show those steps
        page.mouse.move(*at(60_000, 0.5, full))
        page.mouse.down()
        page.mouse.move(*at(70_000, 0.5, full))
        page.mouse.move(*at(80_000, 0.5, full))
        page.mouse.up()
        ticks = losses.locator("svg > g:not([data-x]) > text").all_text_contents()
        assert {"60k", "70k", "80k"} <= set(ticks) and "20k" not in ticks
        hidden = page.locator("g[data-x][display=none]").count()
        assert hidden == 3 * page.locator("figure[data-zoom='run-0']").count()
        assert any(t.startswith("NaN/Inf from step 70,000") for t in ticks)     # the NaN mark is redrawn
        page.mouse.move(*at(NAN_FROM - 5_000, 0.5, [60_000, 80_000]))
        assert _readout(losses)[1].startswith("train/loss: ")
        page.mouse.dblclick(*at(70_000, 0.5, [60_000, 80_000]))
        assert page.locator("g[data-x][display=none]").count() == 0
        assert errors == []
        static = browser.new_page(java_script_enabled=False)
        static.goto(report.as_uri())
        assert not static.locator("#plot-hint").is_visible()
        assert static.locator("figure[data-plot] svg").count() == page.locator("figure[data-plot] svg").count()
        browser.close()
