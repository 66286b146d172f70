"""A report of a 12-run sweep a researcher would keep (trial14 UX M7): a title that counts the
runs ("12 runs in sweep/", not 12 names on 4 lines), the comparison best validation loss first
(as the app's Compare), short column headers, a table whose words are never cut ("no_progres |
s", "lr0.0001_w | d0.1"), and a brief detail per run (35 pages for 12 runs before)."""
import pytest

from trainspect.app.report.content import build_report, open_runs
from trainspect.app.report.html import render_html
from trainspect.recorder import Recorder

from tests.fixtures_runs import make_run

# val loss level of run k: best is neither first nor last in file order
LEVELS = (0.9, 0.4, 1.3, 0.2, 0.7, 1.1, 0.5, 0.3, 1.0, 0.6, 0.8, 1.2)


def _sweep(folder, levels=LEVELS):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, level in enumerate(levels):
        name = f"lr{10.0 ** -(k % 6):g}_wd{0.1 * (k // 6):g}_no_progress_slow_convergence"[:30]
        path = folder / f"{name}.h5"
        with Recorder(path, name=name, config={"lr": 10.0 ** -(k % 6), "wd": 0.1 * (k // 6), "depth": 2}) as rec:
            for step in range(60):
                rec.log({"train/loss": level + 1.0 / (step + 1)}, step=step)
                if step % 10 == 9:
                    rec.log({"val/loss": level + 0.05 + 1.0 / (step + 1)}, step=step)
        paths.append(path)
    return paths


def _report(paths, diagnose_fn=lambda run: []):
    runs = open_runs(paths)
    try:
        return build_report(runs, diagnose_fn=diagnose_fn)
    finally:
        for r in runs:
            r.close()


def test_the_comparison_lists_the_best_validation_loss_first(tmp_path):
    report = _report(_sweep(tmp_path / "sweep"))
    c = report.comparison
    val_best = c.header.index("val best") - 1
    values = [float(cells[val_best]) for _, cells, _ in c.rows]
    assert values == sorted(values) and len(values) == len(LEVELS)
    assert [s.name for s in report.runs] == [name for name, _, _ in c.rows]    # the detail in the same order
    assert (0, val_best) in c.bold                                           # the best value in bold


def test_many_runs_get_a_short_title_and_short_headers(tmp_path):
    report = _report(_sweep(tmp_path / "sweep"))
    assert report.title == "trainspect report: 12 runs in sweep/"
    c = report.comparison
    assert c.header[:3] == ["run", "val best", "val last"]    # the results first
    assert max(len(h) for h in c.header) <= 12, c.header                    # no "train loss, median of last 10"
    assert ("depth", "2") in c.shared and "depth" not in c.header           # said once, not a column of 2s


def test_a_few_runs_keep_their_names_in_the_title(tmp_path):
    report = _report(_sweep(tmp_path / "sweep", LEVELS[:2]))
    assert report.title.count("lr") == 2


def test_brief_sections_for_many_runs_tell_infos_in_a_line(tmp_path):
    """Warnings keep their full text; an info is one line; the config is the comparison's."""
    from trainspect.analysis.findings import Evidence, Finding

    def diagnose_fn(run):
        return [Finding("no_progress", "warning", "the loss did not go down", 0, 59,
                        evidence=[Evidence("train/loss", "flat from step 0", steps=[0], values=[1.0])]),
                Finding("slow_convergence", "info", "slow but steady", 0, 59)]

    html = render_html(_report(_sweep(tmp_path / "sweep"), diagnose_fn))
    assert html.count("<h3>Config</h3>") == 0
    assert html.count("Evidence</b>") == len(LEVELS)                        # each warning in full
    assert html.count("slow_convergence: slow but steady") == len(LEVELS)    # each info a line


def _comparison_doc(report):
    """The comparison table as the PDF lays it out (A4 at 96 px per inch, 42 px margins)."""
    from trainspect.app.gui.pdf import MARGIN, PAGE_DPI, _text_doc, ensure_gui_app, report_blocks

    ensure_gui_app()
    width = 210 / 25.4 * PAGE_DPI - 2 * MARGIN
    block = next(b for b in report_blocks(report) if "Comparison" in getattr(b, "html", ""))
    return _text_doc(block.html, width, *([block.words] if hasattr(block, "words") else [])), width


def _line_breaks(doc) -> list:
    """(text before, text after) every wrap inside a table cell."""
    from PySide6.QtGui import QTextCursor

    doc.size()                         # lays the document out
    breaks, block = [], doc.begin()
    while block.isValid():
        if QTextCursor(block).currentTable() is not None:
            layout, text = block.layout(), block.text()
            for i in range(1, layout.lineCount()):
                at = layout.lineAt(i).textStart()
                breaks.append((text[:at], text[at:]))
        block = block.next()
    return breaks


@pytest.mark.parametrize("seed", [0, 1])
def test_the_pdf_table_never_cuts_a_word_and_fits_the_page(tmp_path, seed):
    pytest.importorskip("PySide6.QtSvg")
    from trainspect.analysis.findings import Finding

    symptoms = ("no_progress", "slow_convergence", "weight_growth", "dead_units")
    seen = []

    def diagnose_fn(run):    # the symptom names the review saw cut: "no_progres | s", "slow_conv | ergence"
        seen.append(run.name)
        k = len(seen) + seed
        return [Finding(s, "warning", s, None, None) for s in symptoms[k % 4:k % 4 + 1 + k % 3]]

    report = _report(_sweep(tmp_path / "sweep"), diagnose_fn)
    doc, width = _comparison_doc(report)
    assert doc.size().width() <= width + 1
    breaks = _line_breaks(doc)
    cut = [(a, b) for a, b in breaks if a and b and a.rstrip("\u200b")[-1:].isalnum() and b[:1].isalnum()]
    assert not cut, cut
    assert "findings" in report.comparison.header and breaks    # the cells do wrap: between words


def test_a_twelve_run_sweep_is_about_a_page_a_run(tmp_path):
    """12 recorded runs (layer statistics, the real advisor, a warning each): 38 pages before."""
    pytest.importorskip("PySide6.QtSvg")
    from trainspect.app.report import export_report

    paths = [make_run(_path(tmp_path, k), n_steps=300, n_layers=3, seed=k,
                      config={"lr": 10.0 ** -(k % 4), "wd": k // 4}) for k in range(12)]
    out = tmp_path / "sweep.pdf"
    export_report(paths, out)
    pages = _pdf_pages(out)
    assert pages <= 12 + 4, pages       # 38 before (each run ~3 pages), 14 now


def _path(tmp_path, k):
    folder = tmp_path / "sweep"
    folder.mkdir(exist_ok=True)
    return folder / f"lr{10.0 ** -(k % 4):g}_wd{k // 4}.h5"


def _pdf_pages(path) -> int:
    """Pages of a PDF written by Qt, without poppler: its page tree's /Count."""
    import re

    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", path.read_bytes())]
    counts += [int(n) for n in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", path.read_bytes())]
    assert counts, "no page tree found"
    return max(counts)
