"""`trainspect report`: self-contained HTML and PDF reports, safe with hostile run files.

Data: two real recorded scenarios (loss spikes from bad batches; NaN from a huge LR) and one
synthetic run whose name, metric name and config value are HTML/script injections.
"""
import os
import re
import shutil
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.app.cli import main as cli_main
from trainspect.app.report import export_report, report_format
from trainspect.app.report.content import build_report, open_runs
from trainspect.app.report.html import render_html
from trainspect.app.report.interactive import SCRIPT_HASH
from trainspect.app.report.svgplot import Line, PlotSpec, heatmap, line_plot, peak_decimate
from tests.fixtures_runs import make_run

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_METRIC = "<img src=x onerror=alert(2)>"
HOSTILE_CONFIG = '"><svg onload=alert(3)>'
VOID = {"meta", "br", "img", "hr", "input", "link", "wbr", "col", "area", "base", "source", "track", "embed"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, scenario_runs):
    d = tmp_path_factory.mktemp("report_runs")
    paths = {
        "spikes": scenario_runs.path("bad_batches_spikes"),
        "nan": scenario_runs.path("nan_from_huge_lr"),
        "hostile": str(make_run(d / "hostile.h5", n_steps=600, n_layers=3, spike_at=300, name=HOSTILE_NAME,
                                metrics=("train/loss", "val/loss", HOSTILE_METRIC),
                                config={"lr": 1e-3, "note": HOSTILE_CONFIG, HOSTILE_METRIC: 1})),
    }
    return paths


@pytest.fixture(scope="module")
def html_report(runs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    steps = []
    export_report(list(runs_dir.values()), out, progress=lambda d, t, x: steps.append((d, t, x)))
    return out.read_text(encoding="utf-8"), steps


class StrictHTML(HTMLParser):
    """Records tags, attributes and nesting errors (every non-void tag must close in order)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.attrs, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(html):
    p = StrictHTML()
    p.feed(html)
    p.close()
    return p


def svg_blocks(html):
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


# ------------------------------------------------------------------ HTML
def test_html_is_well_formed_and_self_contained(html_report):
    html, _ = html_report
    assert html.startswith("<!DOCTYPE html>")
    p = parse(html)
    assert p.errors == [] and p.stack == []
    # Nothing can load, and nothing runs but the report's own script (hover and zoom, allowed by
    # its hash alone): no external resources, no event handlers, CSP set.
    assert not {"link", "iframe", "object", "embed", "img"} & set(p.tags)
    assert p.tags.count("script") == 1
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == f"'{SCRIPT_HASH}'"
    assert not [k for k, _ in p.attrs if k.startswith("on")]
    urls = set(re.findall(r"\b(?:https?|ftp)://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}          # the SVG namespace name, never fetched
    assert not [v for k, v in p.attrs if k in ("src", "href") and v and not v.startswith("#")]


def test_html_contains_every_finding_with_evidence_and_fixes(html_report, runs_dir):
    html, _ = html_report
    text = "".join(parse(html).text)
    for key in ("spikes", "nan"):
        with open_run(runs_dir[key]) as run:
            findings = diagnose(run)
            assert findings, f"scenario {key} should have findings"
            assert run.name in text
        for f in findings:
            assert f.title in text
            assert f.symptom in text
            assert f.fixes[0].text in text
            assert f.evidence[0].text in text
            assert f.causes[0].id.replace("_", " ") in text   # causes read as words
    assert "loss_spikes" in text and "nan_inf" in text
    assert "Comparison" in text                       # several runs: side by side


def test_html_images_are_valid_svg_and_draw_something(html_report):
    html, _ = html_report
    blocks = svg_blocks(html)
    # per run: losses, LR/grad norm (real runs), layer heatmaps; plus finding plots and comparison
    assert len(blocks) >= 15
    for svg in blocks:
        root = ET.fromstring(svg)                      # well-formed XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    pytest.importorskip("PySide6.QtSvg")
    from trainspect.app.gui.pdf import ensure_gui_app
    from PySide6.QtCore import QByteArray
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    ensure_gui_app()
    for svg in blocks[:8]:
        r = QSvgRenderer(QByteArray(svg.encode()))
        assert r.isValid()
        img = QImage(r.defaultSize(), QImage.Format_RGB32)
        img.fill(0xFFFFFFFF)
        painter = QPainter(img)
        r.render(painter)
        painter.end()
        arr = np.frombuffer(img.constBits(), np.uint8)
        assert (arr < 200).mean() > 0.005              # axes, text and curves were drawn


def test_hostile_names_are_escaped_text(html_report):
    html, _ = html_report
    for raw in (HOSTILE_NAME, HOSTILE_METRIC, HOSTILE_CONFIG):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    text = "".join(parse(html).text)
    for raw in (HOSTILE_NAME, HOSTILE_METRIC, HOSTILE_CONFIG):
        assert raw in text                             # shown to the reader as plain text


def test_progress_is_reported_in_order(html_report):
    _, steps = html_report
    totals = {t for _, t, _ in steps}
    assert len(totals) == 1
    assert [d for d, _, _ in steps] == list(range(1, totals.pop() + 1))
    assert any("gradient norms" in text for _, _, text in steps)


def test_nan_run_marks_first_nonfinite_step(runs_dir):
    runs = open_runs([runs_dir["nan"]])
    try:
        html = render_html(build_report(runs))
        loss = runs[0].scalar("train/loss")
        first_bad = int(loss.steps[~np.isfinite(loss.values)][0])
    finally:
        runs[0].close()
    assert f"NaN/Inf from step {first_bad}" in html


# ------------------------------------------------------------------ plots
def test_peak_decimation_keeps_a_one_step_spike():
    x = np.arange(1_000_000, dtype=float)
    y = np.random.default_rng(0).normal(1.0, 0.01, x.size)
    y[654_321] = 80.0
    y[123_456] = -5.0
    xs, ys = peak_decimate(x, y, 0, x[-1], 600)
    assert len(xs) <= 4 * 600
    assert ys.max() == 80.0 and xs[np.argmax(ys)] == 654_321
    assert ys.min() == -5.0
    assert np.all(np.diff(xs) > 0)
    svg = line_plot([Line(x, y)], PlotSpec(width=700, log_y=False))
    assert len(svg) < 200_000                          # 1 M points -> a few thousand vertices
    d = re.search(r' d="([^"]+)"', svg).group(1)
    tops = [float(p.split()[1]) for p in d[1:].split(" L")]
    assert min(tops) < 40                              # the spike reaches the top of the plot area


def test_heatmap_marks_nonfinite_cells_and_escapes_layer_names():
    values = np.ones((50, 3))
    values[10, 1] = np.inf
    svg = heatmap(values, np.arange(50), ["a", "<b>", "c&d"], title="t")
    ET.fromstring(svg)
    assert "#ff00ff" in svg and "&lt;b&gt;" in svg and "c&amp;d" in svg


# ------------------------------------------------------------------ PDF
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_has_pages_text_and_renders(runs_dir, tmp_path):
    pytest.importorskip("PySide6.QtSvg")
    out = tmp_path / "report.pdf"
    export_report([runs_dir["spikes"], runs_dir["hostile"]], out)
    assert out.read_bytes()[:5] == b"%PDF-"
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 3                                  # the comparison, then each run: findings, plots
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    with open_run(runs_dir["spikes"]) as run:
        title = diagnose(run)[0].title
    assert title.split(" (")[0] in " ".join(text.split())
    assert "Comparison" in text and "Fixes, in the order to try them" in text
    assert HOSTILE_NAME in text                         # literal text, not markup
    # page 1 rendered to PNG: it decodes and is not blank
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")], check=True)
    png = next(tmp_path.glob("page*.png"))
    from PySide6.QtGui import QImage
    img = QImage(str(png))
    assert not img.isNull() and img.width() > 200
    arr = np.frombuffer(img.convertToFormat(QImage.Format_Grayscale8).constBits(), np.uint8)
    assert (arr < 128).mean() > 0.01


def _page_fill(pdf, tmp_path) -> list:
    """How far down each page of ``pdf`` is drawn on (0..1, the footer left out)."""
    from PySide6.QtGui import QImage

    subprocess.run(["pdftoppm", "-r", "30", "-gray", "-png", str(pdf), str(tmp_path / "fill")], check=True)
    fill = []
    for png in sorted(tmp_path.glob("fill*.png")):
        img = QImage(str(png)).convertToFormat(QImage.Format_Grayscale8)
        rows = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, :img.width()]
        body = rows[:int(img.height() * 0.93)]                 # above the footer
        inked = np.flatnonzero((body < 200).any(axis=1))
        fill.append((inked[-1] + 1) / img.height() if inked.size else 0.0)
    return fill


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_pages_are_filled_and_the_comparison_starts_under_the_title(tmp_path):
    """F11 (nanoGPT trial): two 300-step runs made 15 pages: page 1 the title alone (the
    comparison table, taller than the room left, moved whole to page 2), a page break before
    each run, pages of one plot or the end of a table over a blank 70 %."""
    pytest.importorskip("PySide6.QtSvg")
    config = {f"setting_{i}": i for i in range(32)}     # the table: taller than the room under the title
    runs = [make_run(tmp_path / f"{name}.h5", n_steps=300, n_layers=3, config={**config, "lr": lr})
            for name, lr in (("good", 1e-3), ("bad", 1e-1))]
    out = tmp_path / "report.pdf"
    export_report(runs, out)
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(out), "-"], capture_output=True, text=True,
                           check=True).stdout
    first = unicodedata.normalize("NFKC", first)           # the font's "fi" ligature
    assert "Comparison" in first and "config: setting_0" in first, first
    fill = _page_fill(out, tmp_path)
    assert len(fill) > 2 and min(fill[:-1]) > 0.5, fill     # every page but the last at least half used


# ------------------------------------------------------------------ CLI
def test_cli_report_writes_html_with_progress_on_stderr(runs_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli_main(["report", runs_dir["spikes"], "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^\[1/\d+\] ", err, flags=re.M) and "wrote" in err
    assert "loss_spikes" in out.read_text(encoding="utf-8")


def test_cli_report_errors_exit_2(runs_dir, tmp_path, capsys):
    assert cli_main(["report", runs_dir["spikes"], "-o", str(tmp_path / "r.docx")]) == 2
    assert ".html or .pdf" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5" * 20)
    assert cli_main(["report", runs_dir["spikes"], str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert "bad.h5" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(ValueError):
        report_format("x.txt")


def test_html_report_needs_no_qt(runs_dir, tmp_path):
    """`report -o x.html` must work on a machine without Qt (imports checked in a fresh process)."""
    out = tmp_path / "r.html"
    code = ("import sys; from app.cli import main; rc = main(['report', sys.argv[1], '-q', '-o', sys.argv[2]]); "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'torch'))]; "
            "assert not bad, bad; sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    res = subprocess.run([sys.executable, "-c", code, runs_dir["hostile"], str(out)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert out.exists()


def test_summary_says_last_only_for_the_last_value(tmp_path):
    """Issue 12: a 4-point validation loss was reported as "final" = a median of its last 10
    points. "last" is the last value; a long series also gets the median of its last 10."""
    from trainspect.app.report.content import SUMMARY_LOSS_WINDOW, run_summary

    path = make_run(tmp_path / "sparse_val.h5", n_steps=2000, metrics=("train/loss", "val/loss"), n_layers=0,
                    val_every=500)
    with open_run(path) as run:
        rows, metrics = run_summary(run)
        train, val = run.scalar("train/loss").values, run.scalar("val/loss").values
    assert len(val) == 4
    text = dict(rows)
    assert metrics["val_last"] == pytest.approx(val[-1]) and "val_end" not in metrics
    from trainspect.app.report.svgplot import fmt_value
    assert text["val loss (val/loss)"].startswith(f"last {fmt_value(val[-1])}, best ")
    assert "median" not in text["val loss (val/loss)"]
    assert metrics["train_last"] == pytest.approx(train[-1])
    assert metrics["train_end"] == pytest.approx(np.median(train[-SUMMARY_LOSS_WINDOW:]))
    assert f"median of the last {SUMMARY_LOSS_WINDOW}" in text["train loss (train/loss)"]
    assert not any("final" in label or "final" in value for label, value in rows)


def test_a_finding_with_one_end_of_its_span_renders(runs_dir):
    """Findings may leave ``last_step`` (or ``first_step``) None; the report shades the one step
    it has, as the app does, instead of failing on the comparison."""
    from dataclasses import replace

    from trainspect.app.report.content import finding_figures
    with open_run(runs_dir["spikes"]) as run:
        finding = next(f for f in diagnose(run) if f.first_step is not None)
        for open_end in (replace(finding, last_step=None), replace(finding, first_step=None)):
            figures = [f for f in finding_figures(run, open_end) if f is not None]
            assert figures and all("<svg" in f.svg for f in figures)
