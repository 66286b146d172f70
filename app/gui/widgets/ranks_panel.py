"""The "Ranks" tab: a distributed run's ranks side by side.

Two rank x step heatmaps of the current run (rows = ranks, columns = steps pooled to the
screen's width): a timing series (step time or data-loader wait: a straggler is a bright row)
and a loss (a rank whose loss stays apart is a row of another colour), and one line per rank
(file, state, last loss, median step time, first non-finite step).

A timing cell is coloured by the largest value in its steps (a one-step stall on one rank is a
bright cell however long the run: a mean over a thousand steps would hide it), the metric's by
the mean; the hover gives both, and the step of the largest. Both are drawn from bounded step
buckets per rank and metric fed only the rows added since (``rank_view.columns``): a refresh of
a long live run reads its new rows, not every rank's file again.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from trainspect.analysis.ranks import summaries

from .. import theme
from ... import rank_view
from ...vocab import SYS_DATA_WAIT, SYS_STEP_TIME, is_sys, stat_label
from ..plain_text import rich
from .lazy import LazyPanel
from .parts import CellHover, bucket_under, message_label, steps_text

TIMING = (SYS_STEP_TIME, SYS_DATA_WAIT)
NOT_DISTRIBUTED = ("A single-process run. For a distributed run (torchrun: one file per rank, exp1.h5, "
                   "exp1.rank1.h5, ...) this tab shows every rank side by side: a rank x step heatmap of the step "
                   "time (stragglers) and of the loss.")
LOG_SPAN = 100.0     # a positive metric spanning more than this factor is coloured by log10


class RanksRead:
    """What one background read of a distributed run's ranks gives the Ranks tab."""

    def __init__(self, timings, metrics, timing, metric, heats, summary):
        self.timings, self.metrics = timings, metrics   # the choices of the two combo boxes
        self.timing, self.metric = timing, metric       # the chosen ones
        self.heats = heats                              # name -> rank_view.Heat of the chosen ones
        self.summary = summary                          # one line per rank (HTML)


def read_ranks(entry, timing, metric, siblings=None, columns: int = 2000):
    """The ranks of ``entry``'s run (a background reader's job, holding its file lock and those
    of ``siblings``, the ranks open as rows: ``rank_view.open_siblings``): the series to choose
    from, ``timing`` and ``metric`` pooled to at most ``columns`` heatmap columns (or the first
    look's choices: the timing where ranks differ most, the training loss), the summary.
    None for a single-process run."""
    rank_view.refresh(entry)
    ranked = rank_view.ranked(entry, siblings)
    if ranked is None:
        return None
    names = ranked.scalar_names()
    timings = [n for n in TIMING if n in names]
    loss = ranked.primary.loss_roles().get("train")
    user = [n for n in names if not is_sys(n)]
    metrics = ([loss] if loss in user else []) + [n for n in user if n != loss]
    if metric not in metrics:
        metric = metrics[0] if metrics else None
    first_look = timing not in timings              # the timing series where ranks differ most
    wanted = [n for n in dict.fromkeys([*(timings if first_look else [timing]), metric]) if n is not None]
    heats = rank_view.heats(entry, ranked, wanted, columns)
    if first_look:
        timings.sort(key=lambda n: -rank_view.rank_contrast(heats[n]))
        timing = timings[0] if timings else None
    heats = {n: h for n, h in heats.items() if n in (timing, metric)}
    return RanksRead(timings, metrics, timing, metric, heats, summary_html(ranked))


def summary_html(ranked) -> str:
    rows = [f"<b>{html.escape(ranked.describe())}</b>"]
    for s in summaries(ranked):
        loss = f"{html.escape(s.loss)} {s.last_loss:.4g}" if s.loss else "no loss"
        step = f", step {s.median_step_time * 1000:.1f} ms" if s.median_step_time == s.median_step_time else ""
        bad = (f", <span style='color:{theme.error_color()}'>non-finite from step {s.first_nonfinite}</span>"
               if s.first_nonfinite is not None else "")
        rows.append(f"rank {s.rank}: {html.escape(s.path.name)} — {html.escape(s.status)}; {loss}{step}{bad}")
    return "<br>".join(rows)


class RankHeatmap:
    """One rank x step heatmap with its colour bar, on its own canvas."""

    def __init__(self, colormap: str):
        self.canvas = pg.GraphicsLayoutWidget()
        theme.style_canvas(self.canvas)
        self.plot = self.canvas.addPlot(row=0, col=0)
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        # cells far above the colour range (clipped to its top colour, like ordinary noise): outlined
        self.marks = pg.ScatterPlotItem(symbol="s", size=11, pen=pg.mkPen("#00E5FF", width=2), brush=None)
        self.plot.addItem(self.marks)
        self.outliers: list = []              # (row, column) of the outlined cells
        self.bar = pg.ColorBarItem(colorMap=pg.colormap.get(colormap), interactive=False, width=12)
        self.bar.setImageItem(self.image)
        self.canvas.addItem(self.bar, row=0, col=1)
        self.first = self.last = np.empty(0)
        self.values = np.empty((0, 0))        # the shown (pooled, not log) values [ranks, columns]
        self.ranks: list = []
        self.name = ""
        self.heat = None                      # the rank_view.Heat shown (its means and maxima, for the hover)

    def show(self, heat, name: str) -> None:
        """Draw ``heat`` (a ``rank_view.Heat``): a timing series by each cell's largest value,
        another metric by its mean."""
        self.name, self.ranks, self.heat = name, list(heat.ranks), heat
        self.first, self.last = heat.first, heat.last
        self.values = heat.top if name in TIMING else heat.mean
        if not len(self.first):
            self.image.clear()
            self.marks.clear()
            self.outliers = []
            return
        shown = self.values
        finite = shown[np.isfinite(shown)]
        log = bool(finite.size) and finite.min() > 0 and finite.max() > LOG_SPAN * finite.min()
        if log:
            shown = np.log10(np.where(shown > 0, shown, np.nan))
        ok = shown[np.isfinite(shown)]
        # robust colour levels: one slow step (a GC pause, a checkpoint) must not wash out the rest
        lo, hi = (float(np.percentile(ok, 1)), float(np.percentile(ok, 99))) if ok.size else (0.0, 1.0)
        self.image.setImage(np.nan_to_num(shown, nan=lo, posinf=hi, neginf=lo), autoLevels=False)
        self.bar.setLevels((lo, hi if hi > lo else lo + 1e-12))
        self._mark(shown, lo, hi)
        self.bar.setLabel("right", f"log10 {rich(stat_label(name))}" if log else rich(stat_label(name)))
        x0, x1 = float(self.first[0]), float(self.last[-1]) + 1
        self.image.setRect(QRectF(x0, 0, max(x1 - x0, 1.0), len(self.ranks)))
        self.plot.getAxis("left").setTicks([[(i + 0.5, f"rank {r}") for i, r in enumerate(self.ranks)]])
        self.plot.getViewBox().setLimits(yMin=0, yMax=max(1, len(self.ranks)))
        self.plot.setYRange(0, len(self.ranks), padding=0)
        self.plot.setXRange(x0, x1, padding=0)

    def _mark(self, shown, lo: float, hi: float) -> None:
        """Outline the cells above the colour range by more than its width (a one-step stall in a
        max-pooled timing cell): the robust levels clip them to the top colour, which ordinary
        cells near the 99th percentile share, so the colour alone would not tell them apart."""
        with np.errstate(invalid="ignore"):
            rows, cols = np.nonzero(shown > hi + max(hi - lo, 1e-12))
        self.outliers = list(zip(rows.tolist(), cols.tolist()))
        x = (self.first[cols] + self.last[cols] + 1) / 2.0
        self.marks.setData(x=x.astype(np.float64), y=rows + 0.5)

    def clear(self) -> None:
        self.image.clear()
        self.marks.clear()
        self.outliers = []
        self.first = self.last = np.empty(0)
        self.values = np.empty((0, 0))
        self.heat = None

    def cell_at(self, step: float, row: float):
        """(rank, first step, last step, value) under a point, or None."""
        hit = bucket_under(self.first, self.last, len(self.ranks), step, row)
        if hit is None:
            return None
        r, col = hit
        return self.ranks[r], int(self.first[col]), int(self.last[col]), float(self.values[r, col])

    def hover_text(self, rank, first: int, last: int, value: float) -> str:
        label = html.escape(stat_label(self.name))
        if first == last or self.heat is None:
            return f"rank {rank}, {steps_text(first, last)}: {label} <b>{value:.4g}</b>"
        r, col = self.ranks.index(rank), int(np.searchsorted(self.first, first))
        mean, top, at = (float(a[r, col]) for a in (self.heat.mean, self.heat.top, self.heat.top_step))
        where = f" at step {int(at)}" if at == at else ""
        return (f"rank {rank}, {steps_text(first, last)}: {label} mean <b>{mean:.4g}</b>, "
                f"max <b>{top:.4g}</b>{where}")


class RanksPanel(LazyPanel):
    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.entry = None
        self.timing_combo = QComboBox()
        self.loss_combo = QComboBox()
        self.loss_combo.setMinimumWidth(160)
        self.hover = QLabel(" ")
        self.hover.setTextFormat(Qt.RichText)
        self.controls = QWidget()     # hidden with the heatmaps: empty combos read as broken
        bar = QHBoxLayout(self.controls)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("timing:"))
        bar.addWidget(self.timing_combo)
        bar.addSpacing(12)
        bar.addWidget(QLabel("metric:"))
        bar.addWidget(self.loss_combo)
        bar.addSpacing(12)
        bar.addWidget(self.hover, 1)
        self.timing = RankHeatmap("inferno")
        self.metric = RankHeatmap("viridis")
        self.metric.plot.setXLink(self.timing.plot)
        self.metric.plot.setLabel("bottom", "step")
        self.summary = QLabel("")
        self.summary.setTextFormat(Qt.RichText)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message = message_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.controls)
        lay.addWidget(self.message)
        lay.addWidget(self.timing.canvas, 1)
        lay.addWidget(self.metric.canvas, 1)
        lay.addWidget(self.summary)
        self._hovers = [CellHover(m.canvas, m.plot, m.cell_at, self.hover, m.hover_text) for m in (self.timing, self.metric)]
        self.timing_combo.currentIndexChanged.connect(lambda _: self._load(self._wanted))
        self.loss_combo.currentIndexChanged.connect(lambda _: self._load(self._wanted))
        self.follow_current_run(runs)
        self.load(runs.current)

    # ------------------------------------------------------------ data
    def _load(self, entry) -> None:
        if entry is None:
            self._release()
            self.say("no run selected")
            return
        if self.entry is None or self.entry.run is not entry.run:
            self._release()
            self.say_reading("the ranks", entry)
        timing, metric = self.timing_combo.currentData(), self.loss_combo.currentData()
        siblings = rank_view.open_siblings(entry, self.runs.rows())
        px = max(100, self.width() - 120)              # heatmap columns: about one per pixel
        self.read("ranks", entry, lambda: read_ranks(entry, timing, metric, siblings, px),
                  lambda got: self._show(entry, got), "the other ranks", also=siblings.values())

    def shows_rows_of(self, updated, current) -> bool:
        return updated is current or rank_view.reads_through(current, updated)

    def _release(self) -> None:
        self.entry = None
        for heat in (self.timing, self.metric):
            heat.clear()

    def say(self, text: str, error: bool = False) -> None:
        super().say(text, error)
        self._set_visible(not text)

    def _show(self, entry, got) -> None:
        """The ranks read in the background arrived (GUI thread)."""
        self.entry = entry
        if got is None:
            self._release()
            self.say(NOT_DISTRIBUTED)
            return
        self.say("")
        self._fill(self.timing_combo, got.timings, got.timing)
        self._fill(self.loss_combo, got.metrics, got.metric)
        for heat, name in ((self.timing, got.timing), (self.metric, got.metric)):
            if name is None:
                heat.clear()
            else:
                heat.show(got.heats[name], name)
        self.summary.setText(got.summary)

    @staticmethod
    def _fill(combo, names, current) -> None:
        combo.blockSignals(True)
        combo.clear()
        for n in names:
            combo.addItem(stat_label(n), n)
        if current in names:
            combo.setCurrentIndex(names.index(current))
        combo.blockSignals(False)

    def _set_visible(self, on: bool) -> None:
        self.message.setVisible(not on)
        for w in (self.controls, self.timing.canvas, self.metric.canvas, self.summary):
            w.setVisible(on)
