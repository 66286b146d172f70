"""Advisor panel: the findings of ``analysis.diagnose(run)``, most severe first.

Clicking a finding jumps the plots to its step span, highlights it and selects its layers.
"""
from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QSplitter, QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ... import vocab
from ...present import cause_name, rich_html, step_span
from trainspect.analysis.lr_range import is_sweep

from ... import rank_view
from ..advisor import AdvisorJobs
from ...vocab import is_lr, same_series
from ..plain_text import rich, shown, tip
from ..run_io import locked_read
from .parts import NAME_CHARS, elide, shrinkable
from .throttle import Throttle
from .. import theme

START_DELAY_MS = 300
REDIAGNOSE_MS = 3_000          # live runs: re-diagnose at most this often ...
REDIAGNOSE_DUTY = 10           # ... and at most 1/10 of the time (a 2 s diagnosis: every 20 s)


def finding_key(finding) -> tuple:
    """What a finding *is* across live re-diagnoses: its symptom and first layer. Its title,
    numbers, span and further layers change as the run goes on (dead ReLUs: 75 %, then 86 %, in
    one more layer); the (symptom, all layers) key of old lost the selection when they did."""
    layers = list(getattr(finding, "layers", None) or [])
    return finding.symptom, (layers[0] if layers else None)


def find_same(findings, key):
    """Index of the finding that is ``key`` in ``findings``: the same symptom and first layer,
    else the only finding of that symptom; None if there is none."""
    if key is None:
        return None
    exact = [i for i, f in enumerate(findings) if finding_key(f) == key]
    if exact:
        return exact[0]
    same = [i for i, f in enumerate(findings) if f.symptom == key[0]]
    return same[0] if len(same) == 1 else None


def gaps_html(lines) -> str:
    """``coverage().lines()`` as rich text: the heading in bold, a bullet per gap, the remedy
    shared by several gaps in italics."""
    if not lines:
        return ""
    out = []
    for i, line in enumerate(lines):
        text = html.escape(line.strip())
        if i == 0 and line.endswith(":"):
            out.append(f"<b>{text}</b>")
        elif line.strip().startswith("->"):
            out.append(f"&nbsp;&nbsp;<i>{text}</i>")
        elif line.startswith(" "):
            out.append(f"&bull; {text}")
        else:
            out.append(text)
    return f"<span style='color:{theme.muted_color()}'>" + "<br>".join(out) + "</span>"


def symptom_words(finding) -> str:
    return str(finding.symptom).replace("_", " ")


def run_verdict(findings) -> tuple[str, str]:
    """(one line, its tooltip) naming the run's likely problem: the top cause of the most severe
    finding (``findings`` come most severe first), and the findings whose top cause is the same
    ("likely problem: lr too high — seen as dead units, no progress, loss spikes"); ("", "") when
    nothing warns. The CLI demo's "the advisor names the problem -- likely cause: ..." sentence
    (commands/demo.headline) is scenario-bound (it checks the planted problem), so it is not
    reused here; the words (cause_name, the symptom in words) are the same."""
    loud = [f for f in findings or [] if f.severity != "info"]
    if not loud:
        return "", ""
    lead = next((f for f in loud if f.causes), loud[0])
    if not lead.causes:
        seen = list(dict.fromkeys(symptom_words(f) for f in loud))
        return f"likely problem: {seen[0]}" + (f" (also: {', '.join(seen[1:])})" if seen[1:] else ""), ""
    cause = lead.causes[0].id
    agree = [f for f in loud if f.causes and f.causes[0].id == cause]
    others = [f for f in loud if f not in agree]
    text = f"likely problem: {cause_name(cause)} — seen as {', '.join(dict.fromkeys(symptom_words(f) for f in agree))}"
    if others:
        text += (" (1 other finding points elsewhere)" if len(others) == 1
                 else f" ({len(others)} other findings point elsewhere)")
    lines = [f"top cause of the most severe finding ({shown(lead.title)}): {cause_name(cause)}",
             "findings that agree:", *(f"  • {shown(f.title)}" for f in agree)]
    if others:
        lines += ["findings whose top cause differs:",
                  *(f"  • {shown(f.title)} → {cause_name(f.causes[0].id) if f.causes else 'no cause named'}"
                    for f in others)]
    return text, "\n".join(lines)


class AdvisorPanel(QWidget):
    diagnosed = Signal(str)     # a run's key: its findings (``result``) are new

    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.findings: list = []
        self._focused = None                 # the finding whose evidence was plotted last
        self._cache: dict[str, tuple] = {}
        self.jobs = AdvisorJobs(self)
        self.jobs.finished.connect(self._on_result)
        self._gaps: dict[str, list] = {}     # run key -> what its diagnosis could not check
        self.jobs.covered.connect(self._gaps.__setitem__)
        # Diagnoses start a moment after a run opens: the first paint does not share the CPU.
        self._pending: dict = {}
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.setInterval(START_DELAY_MS)
        self._start_timer.timeout.connect(self._start_pending)
        self._grown: set = set()
        self._rediagnose = Throttle(self._rediagnose_grown, REDIAGNOSE_MS, self)
        self._rediagnose_started = None

        # The run's likely problem in one line, from its findings (run_verdict), above them all.
        self.verdict = shrinkable(QLabel(""))
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.PlainText)    # finding titles name layers: text, never HTML
        self.verdict.setStyleSheet("font-weight:bold")
        self.verdict.setVisible(False)
        self.status = shrinkable(QLabel(""))
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)   # markup of ours; names in it are escaped (plain_text.rich)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["severity", "finding", "where"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        # Under the findings: what the advisor could not check (the CLI's "not checked" list);
        # without it "no problems found" read as a clean bill for a run with no gradients.
        self.gaps = shrinkable(QLabel(""))
        self.gaps.setWordWrap(True)
        self.gaps.setTextFormat(Qt.RichText)
        self.gaps.setVisible(False)
        top = QWidget()
        top_lay = QVBoxLayout(top)
        top_lay.setContentsMargins(0, 0, 0, 0)
        top_lay.addWidget(self.tree, 1)
        top_lay.addWidget(self.gaps)
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(self.details)
        split.setSizes([200, 300])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.verdict)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self.tree.currentItemChanged.connect(lambda cur, _: cur is not None and self.activate(self.tree.indexOfTopLevelItem(cur)))
        self.tree.itemClicked.connect(lambda item, _: self.activate(self.tree.indexOfTopLevelItem(item)))
        runs.currentChanged.connect(self.load)
        runs.runRemoved.connect(lambda e: self._cache.pop(e.key, None))
        runs.runRemoved.connect(lambda e: self._gaps.pop(e.key, None))
        # A sweep opened or closed beside a run changes its LR fixes (they quote the suggestion).
        runs.runAdded.connect(self._sweeps_changed)
        runs.runRemoved.connect(self._sweeps_changed)
        runs.runUpdated.connect(self._on_update)
        self.load(runs.current)

    def _on_update(self, entry, n) -> None:
        # Live run: keep showing the last result; re-diagnose on a throttle (see REDIAGNOSE_*).
        self._grown.add(entry.key)
        self._rediagnose.trigger()

    def _start(self, entry) -> None:
        """Diagnose ``entry`` in the background; its rank files are read through the runs the
        app holds of them (rows, or the Ranks tab's), never through a second handle."""
        siblings = rank_view.open_siblings(entry, self.runs.rows())

        def hold(work):
            return locked_read(entry.run, work, also=siblings.values())
        self.jobs.start(entry.key, entry.run, self.sweep_run(entry), rank_view.shared_reuser(entry, siblings, hold))

    def sweep_run(self, entry):
        """The run of the first open LR range test other than ``entry`` (None if there is none)."""
        return next((e.run for e in self.runs.runs() if e is not entry and e.ready and is_sweep(e.run)), None)

    def _sweeps_changed(self, entry) -> None:
        if entry is None or not entry.ready or not is_sweep(entry.run):
            return
        self._cache = {k: v for k, v in self._cache.items() if k == entry.key}
        self.load(self.runs.current)

    def _rediagnose_grown(self) -> None:
        self._rediagnose_started = time.monotonic()
        open_runs = {e.key: e for e in self.runs.runs()}
        grown, self._grown = self._grown, set()
        for key in grown:
            if key in open_runs:
                self._start(open_runs[key])

    def load(self, entry) -> None:
        self.tree.blockSignals(True)    # clearing moves the current item: that is no user click
        self.tree.clear()
        self.tree.blockSignals(False)
        self.details.clear()
        self.findings = []
        self._show_gaps([])
        if entry is None:
            self.status.setText("no run selected")
            self.verdict.setVisible(False)
            return
        self.status.setToolTip(tip(shown(entry.name)))   # the label shows the name cut to NAME_CHARS
        if entry.key not in self._cache:
            # Run names and advisor messages are text (a name like "<b>x</b>" must show as typed).
            self.set_findings([], f"<b>{rich(elide(shown(entry.name), NAME_CHARS))}</b>: diagnosing…")
            self._pending[entry.key] = entry
            self._start_timer.start()
            return
        findings, message = self._cache[entry.key]
        self.set_findings(findings, f"<b>{rich(elide(shown(entry.name), NAME_CHARS))}</b>: {html.escape(message)}")
        self._show_gaps(self._gaps.get(entry.key, []))

    def _show_gaps(self, lines) -> None:
        """The "not checked" lines of ``trainspect diagnose``: a heading, one line per gap."""
        self.gaps.setVisible(bool(lines))
        self.gaps.setText(gaps_html(lines))

    def _start_pending(self) -> None:
        open_runs = {e.key: e for e in self.runs.runs()}
        pending, self._pending = self._pending, {}
        for key, entry in pending.items():
            if open_runs.get(key) is entry:
                self._start(entry)

    def _on_result(self, key: str, findings, message: str) -> None:
        entry = next((e for e in self.runs.runs() if e.key == key), None)
        if entry is None:
            return                       # closed while it was being diagnosed
        self._cache[key] = (findings, message)
        self.diagnosed.emit(key)
        if self._rediagnose_started is not None:   # slow diagnoses on big runs: re-run less often
            took_ms = (time.monotonic() - self._rediagnose_started) * 1e3
            self._rediagnose.set_interval(max(REDIAGNOSE_MS, int(REDIAGNOSE_DUTY * took_ms)))
            self._rediagnose_started = None
        if entry is self.runs.current:
            keep = self._selected_key()
            self.load(entry)
            self._reselect(keep)   # a live re-diagnosis must not drop what the user is reading

    def result(self, key: str):
        """(findings or None when the advisor could not run, message) of the run ``key``, or None
        before its first diagnosis."""
        return self._cache.get(key)

    def request(self, entry) -> None:
        """Diagnose ``entry`` (not the current run: the Compare tab's rows) unless its result is
        known or on its way; ``diagnosed`` says when it is."""
        if entry.key not in self._cache and not self.jobs.busy(entry.key) and entry.key not in self._pending:
            self._start(entry)

    def busy(self) -> bool:
        """A diagnosis is running (tests, screenshots)."""
        return self.jobs.busy() or bool(self._pending)

    def _selected_key(self):
        item = self.tree.currentItem()
        i = self.tree.indexOfTopLevelItem(item) if item is not None else -1
        return finding_key(self.findings[i]) if 0 <= i < len(self.findings) else None

    def selected_finding(self):
        """The finding selected in the list, or None."""
        item = self.tree.currentItem()
        i = self.tree.indexOfTopLevelItem(item) if item is not None else -1
        return self.findings[i] if 0 <= i < len(self.findings) else None

    def _reselect(self, key) -> None:
        """Select the finding that is ``key`` (see finding_key) again after a live re-diagnosis,
        wherever it now is in the list, and show its new numbers; without it nothing is
        selected (never another finding at the old row)."""
        i = find_same(self.findings, key)
        if i is None:
            return
        f = self.findings[i]
        self.tree.blockSignals(True)   # no jump of the plots: that would stop following
        self.tree.setCurrentItem(self.tree.topLevelItem(i))
        self.tree.blockSignals(False)
        self.details.setHtml(rich_html(f))
        if self._focused is not None and find_same([self._focused], key) == 0:
            self._focused = f
            self.view.refresh_finding(f)     # its highlight grows with it

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for running diagnoses and show their results (tests, screenshots)."""
        from PySide6.QtWidgets import QApplication

        self._start_timer.stop()
        self._start_pending()
        self.jobs.wait(timeout)
        QApplication.processEvents()

    def set_findings(self, findings, message: str) -> None:
        """Show ``findings`` (already sorted, most severe first) under a status line.
        ``message`` is rich text: whatever it quotes from the run is escaped already (``rich``)."""
        self.tree.blockSignals(True)    # clearing moves the current item: that is no user click
        self.tree.clear()
        self.tree.blockSignals(False)
        self.details.clear()
        self.status.setText(message)
        self.findings = list(findings or [])
        verdict, why = run_verdict(self.findings)
        self.verdict.setText(verdict)
        self.verdict.setToolTip(tip(why) if why else "")
        self.verdict.setVisible(bool(verdict))
        if verdict:
            worst = next(f for f in self.findings if f.severity != "info")
            self.verdict.setStyleSheet(f"font-weight:bold;color:{theme.severity_color(worst.severity)}")
        self.tree.blockSignals(True)    # Qt may make the first new row current: that is no click
        for f in self.findings:
            item = QTreeWidgetItem([f.severity, shown(f.title), step_span(f)])
            item.setForeground(0, QBrush(QColor(theme.severity_color(f.severity))))
            item.setToolTip(1, tip(shown(f.title)))   # a title names layers: as typed, never HTML
            self.tree.addTopLevelItem(item)
        self.tree.setCurrentItem(None)
        self.tree.blockSignals(False)
        if not self.findings:
            self.details.setHtml(f"<p style='color:{theme.muted_color()}'>{message}</p>")
        else:
            self.details.setHtml(f"<p style='color:{theme.muted_color()}'>Click a finding to see its evidence, causes and fixes "
                                 "and to jump the plots to it.</p>")

    def step_finding(self, delta: int) -> None:
        """Focus the next (``delta`` 1) or previous (-1) finding of the list (View > Next /
        Previous finding, N / P): from none selected, the first or the last."""
        if not self.findings:
            return
        item = self.tree.currentItem()
        i = self.tree.indexOfTopLevelItem(item) if item is not None else -1
        if i < 0:
            i = 0 if delta > 0 else len(self.findings) - 1
        else:
            i = min(len(self.findings) - 1, max(0, i + delta))
        self.activate(i)

    def activate(self, index: int) -> None:
        """Show a finding's details and move the plots to it."""
        if not 0 <= index < len(self.findings):
            return
        f = self.findings[index]
        item = self.tree.topLevelItem(index)
        if self.tree.currentItem() is not item:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(item)
            self.tree.blockSignals(False)
        self.details.setHtml(rich_html(f))
        entry = self.runs.current
        status = entry.status if entry is not None else None
        last = status.last_step if status is not None and status.last_step >= 0 else None
        self.view.focus_finding(f, layer_stats=vocab.LAYER_STATS, last_step=last)
        self._plot_evidence(f)

    def _plot_evidence(self, finding) -> None:
        """Add the scalar series the finding's evidence names (``sys/input_std``...) to the
        plots: the steps were highlighted, but the series that shows the problem was not plotted.
        A learning rate the plots show already under another name (``sys/lr`` beside the ``lr``
        the script logged) is not added: the same curve twice. That takes a read of both."""
        self._focused = finding
        entry = self.runs.current
        names = set(entry.names) if entry is not None else set()
        if entry is not None and entry.ready:
            # A finding about the training and the validation loss (overfitting) is seen on the
            # plot that draws both on one axis: the gap between them is the evidence.
            roles = vocab.loss_roles([n for n in names if not vocab.is_sys(n)],
                                     (entry.run.meta or {}).get(vocab.META_ROLES))
            series = {ev.series for ev in finding.evidence}
            if "train" in roles and "val" in roles and {roles["train"], roles["val"]} <= series:
                self.view.set_combine_losses(True)
        missing = list(dict.fromkeys(ev.series for ev in finding.evidence
                                     if ev.series in names and ev.series not in self.view.metrics))
        shown_lrs = [m for m in self.view.metrics if m in names and is_lr(m)]
        doubtful = [m for m in missing if is_lr(m)] if shown_lrs else []
        if not doubtful:
            self._add_evidence(finding, missing)
            return

        def copies():
            run = entry.run
            return [m for m in doubtful if any(same_series(run.scalar(m), run.scalar(o)) for o in shown_lrs)]

        self.runs.io.submit(lambda: locked_read(entry.run, copies),
                            lambda dup: self._add_evidence(finding, [m for m in missing if m not in dup]),
                            lambda exc: self._add_evidence(finding, missing))

    def _add_evidence(self, finding, metrics) -> None:
        if metrics and finding is self._focused:     # not another finding's, clicked meanwhile
            self.view.set_metrics(self.view.metrics + metrics)
