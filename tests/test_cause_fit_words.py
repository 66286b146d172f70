"""A finding's causes read as how well each fits, never as percentages (trial14 M9).

The advisor scores each cause on its own (0..1); the scores of one finding add up past 1, and
"lr too low (45%) / bad init (30%) / optimizer setup (25%) / activation choice (15%)" was read
as probabilities. The CLI, the app's Advisor panel and the reports say "strong / medium / weak
fit"; only ``diagnose --json`` keeps the number.
"""
from __future__ import annotations

import json
import re

import pytest

from trainspect.analysis import Cause, Evidence, Finding
from trainspect.app.present import rich_html, text_lines, web_html
from tests.fixtures_runs import make_run

PERCENT_AFTER_CAUSE = re.compile(r"\(\d+\s?%\)")
FIT = re.compile(r"\((strong|medium|weak) fit\)")


def _finding():
    return Finding("no_progress", "warning", "train/loss barely moved", 0, 149,
                   evidence=[Evidence("train/loss", "2.4 % better; threshold 5 % better")],
                   causes=[Cause("lr_too_low", 0.45, "updates too small"), Cause("bad_init", 0.30, "init"),
                           Cause("optimizer_setup", 0.25, "setup"), Cause("activation_choice", 0.15, "act")],
                   fixes=["raise the learning rate 10x"])


def test_fit_words_follow_the_score():
    from trainspect.app.present import fit_word

    assert [fit_word(c) for c in (1.0, 0.6, 0.59, 0.3, 0.29, 0.0, -0.1)] == \
        ["strong fit", "strong fit", "medium fit", "medium fit", "weak fit", "weak fit", "weak fit"]


def test_every_renderer_names_the_fit_and_no_percentage():
    f = _finding()
    for out in ("\n".join(text_lines(f)), web_html(f), rich_html(f), "\n".join(text_lines(f, brief=True))):
        assert "lr too low (medium fit)" in out
        assert not PERCENT_AFTER_CAUSE.search(out), out
        assert "45%" not in out and "45 %" not in out
    full = "\n".join(text_lines(f))
    for words in ("bad init (medium fit)", "optimizer setup (weak fit)", "activation choice (weak fit)"):
        assert words in full
    assert "2.4 % better" in full            # evidence percentages are measurements: kept


@pytest.fixture(scope="module")
def spike_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fit") / "spikes.h5", n_steps=600, spike_at=300)


def _cause_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("likely cause:", "or:"))]


def test_diagnose_text_matches_the_json_scores_in_words(spike_run, capsys):
    from trainspect.app.cli import main

    def fit_word(score):            # the words of the thresholds above, spelled out here
        return "strong fit" if score >= 0.6 else "medium fit" if score >= 0.3 else "weak fit"

    main(["diagnose", str(spike_run), "--json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    expected = [f"{c['id'].replace('_', ' ')} ({fit_word(c['confidence'])})" for f in findings for c in f["causes"]]
    assert expected, "the spike run should have findings with causes"
    main(["diagnose", str(spike_run)])
    lines = _cause_lines(capsys.readouterr().out)
    assert len(lines) == len(expected)
    for line, words in zip(lines, expected):
        assert words in line and FIT.search(line) and not PERCENT_AFTER_CAUSE.search(line), line


def test_html_report_names_the_fit(spike_run, tmp_path):
    from trainspect.app.report import export_report

    html = export_report([str(spike_run)], tmp_path / "r.html").read_text(encoding="utf-8")
    causes = re.findall(r"<b>Likely causes</b><ol>(.*?)</ol>", html, flags=re.S)
    assert causes
    for block in causes:
        items = re.findall(r"<li>(.*?)</li>", block, flags=re.S)
        assert items and all(FIT.search(i) and not PERCENT_AFTER_CAUSE.search(i) for i in items), items


def test_advisor_panel_details_name_the_fit(window, spike_run, qtbot):
    pytest.importorskip("pyqtgraph")
    from tests.gui_helpers import open_runs

    open_runs(window, [spike_run])
    window.advisor.wait()
    window.advisor.set_findings([_finding()], "1 finding")
    window.advisor.activate(0)
    details = window.advisor.details.toPlainText()
    assert "lr too low (medium fit)" in details and "optimizer setup (weak fit)" in details
    assert not PERCENT_AFTER_CAUSE.search(details), details
