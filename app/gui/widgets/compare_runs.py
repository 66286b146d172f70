"""The Compare tab: every open run as a row of a sortable table (app/run_table.py says which
columns), and under it a result against a setting, one point per run (sweep_scatter.py). Click
a header to sort, a row or a point to make that run current; "Copy as CSV" puts the table on
the clipboard for a notebook or a spreadsheet.

Rows are read on the model's background readers while the tab is on screen, each run once and
again when a live run has new rows (at most every LIVE_RELOAD_MS): fifty open runs cost nothing
while another tab is shown.
"""
from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPixmap, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QCheckBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from .. import theme
from ...report.svgplot import fmt_value
from ...run_table import advice_text, best_rows, columns, row_labels, run_row, sort_key, to_csv
from ...vocab import Severity
from ..plain_text import plain
from ..run_io import LatestReads, locked_read
from .lazy import LIVE_RELOAD_MS
from .parts import shrinkable
from .sweep_scatter import SweepScatter
from .throttle import Throttle

RUN_COLUMNS = ("run", "state", "steps")
# The results a sweep is compared by come right after the run's name, then the settings that
# differ; the run's state, steps, the advisor and other metrics after them (at 1600 px the val
# loss columns were behind a horizontal scroll bar, after state, steps, advisor and the config).
KEY_RESULTS = ("val loss best", "val loss last", "train loss end")
DEFAULT_SORT = ("val loss best", "train loss end")   # the first present sorts the rows, lowest first
FILL_MS = 100                    # rows and diagnoses arriving together rebuild the table once
ADVISOR_COLUMN = "advisor"       # after the run's state: which runs have a problem, at a glance
ADVISOR_MAX_PX = 220             # wider advice is cut (the whole of it, one title a line, in its tooltip)
COLUMN_MAX_PX = 260              # a long run name or config value is cut (its tooltip has it whole)


def _sort_key(value, text: str = ""):
    """run_table.sort_key, with blanks and NaN after everything (ascending)."""
    return sort_key(value) or (2, 0.0, text)


class _Item(QTableWidgetItem):
    def __init__(self, text: str, key=None):
        super().__init__(text)
        self.key = _sort_key(text, text) if key is None else key
        self.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)

    def __lt__(self, other):
        return self.key < getattr(other, "key", (3, 0.0, other.text()))


def _swatch(color: str) -> QIcon:
    pix = QPixmap(10, 10)
    pix.fill(QColor(color))
    return QIcon(pix)


class CompareRunsPanel(QWidget):
    """``advisor``: the AdvisorPanel, whose diagnoses fill the advisor column (one run at a time,
    while the tab is shown; live runs are re-diagnosed by it as they grow)."""

    def __init__(self, runs, advisor=None, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.advisor = advisor
        self.rows: dict = {}           # entry key -> RunRow
        self._stale: set = set()       # entry keys whose row must be read (again)
        self.reads: LatestReads | None = None
        self.message = plain(shrinkable(QLabel()))    # a long message wraps, never widens the window
        self.message.setWordWrap(True)
        self.every_key = QCheckBox("every config key")
        self.every_key.setToolTip("show config keys that are the same in every run too (and an imported run's source)")
        self.every_key.toggled.connect(self._fill)
        self.copy = QPushButton("Copy as CSV")
        self.copy.setToolTip("the table, as sorted, with full-precision numbers")
        self.copy.clicked.connect(self.copy_csv)
        top = QHBoxLayout()
        top.addWidget(self.message, 1)
        top.addWidget(self.every_key)
        top.addWidget(self.copy)
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)   # compact rows
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.setSortingEnabled(True)
        self._user_sorted = False      # a header was clicked: its order is kept, not the default
        self._filling = False
        self.table.horizontalHeader().sortIndicatorChanged.connect(self._sort_changed)
        self.table.cellClicked.connect(self._row_clicked)
        self.scatter = SweepScatter(runs)      # a result against a setting, one point per run
        split = QSplitter(Qt.Horizontal)       # beside the table: the bottom dock is short
        split.addWidget(self.table)
        split.addWidget(self.scatter)
        split.setSizes([3000, 2000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.live_reload = Throttle(self._read_stale, LIVE_RELOAD_MS, self)
        self.refill = Throttle(self._fill, FILL_MS, self)
        runs.runAdded.connect(self._changed)
        runs.runRestarted.connect(lambda e, _msg: self._changed(e))
        runs.runUpdated.connect(lambda e, n: n and self._changed(e, later=True))
        runs.runRemoved.connect(self._removed)
        runs.currentChanged.connect(self._select_current)
        if advisor is not None:
            advisor.diagnosed.connect(self._diagnosed)
        for e in runs.runs():
            self._stale.add(e.key)
        self._fill()

    # ------------------------------------------------------------ reading
    def _changed(self, entry, later: bool = False) -> None:
        self._stale.add(entry.key)
        if later:
            self.live_reload.trigger()
        else:
            self._read_stale()

    def _removed(self, entry) -> None:
        self._stale.discard(entry.key)
        if self.rows.pop(entry.key, None) is not None:
            self._fill()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._read_stale()

    def _read_stale(self) -> None:
        if not self.isVisible():
            return                       # read when shown
        for entry in self.runs.runs():
            if entry.key in self._stale:
                self._stale.discard(entry.key)
                self._read(entry)
        self._say()
        self._ask_advisor()

    def _ask_advisor(self) -> None:
        """Diagnose the first open run the advisor has no result for (one at a time: fifty
        diagnoses at once would starve the plots' reads)."""
        if self.advisor is None or not self.isVisible() or self.advisor.busy():
            return
        entry = next((e for e in self.runs.runs() if self.advisor.result(e.key) is None), None)
        if entry is not None:
            self.advisor.request(entry)

    def _diagnosed(self, key: str) -> None:
        if key in self.rows:
            self.refill.trigger()
        self._ask_advisor()

    def _read(self, entry) -> None:
        if self.reads is None:
            self.reads = LatestReads(self.runs.io)
        self.reads.request(("row", entry.key), entry.key, lambda: locked_read(entry.run, lambda: run_row(entry.run)),
                           lambda row: self._got(entry, row),
                           lambda exc: self._failed(entry, exc))

    def _got(self, entry, row) -> None:
        if entry not in self.runs.runs():
            return                       # closed while its row was read
        self.rows[entry.key] = row
        self.refill.trigger()

    def _failed(self, entry, exc) -> None:
        self.runs.report_read_error(entry, f"{entry.path}: cannot read its summary for the Compare tab ({exc})")

    def reading(self) -> bool:
        """A row read has not come back, or not been shown, yet (tests, screenshots)."""
        return (self.reads is not None and self.reads.pending()) or self.refill.pending()

    # ------------------------------------------------------------ showing
    def shown_rows(self) -> list:
        """(entry, RunRow) of the open runs whose row has been read, in the order opened."""
        return [(e, self.rows[e.key]) for e in self.runs.runs() if e.key in self.rows]

    def _say(self) -> None:
        n, read = len(self.runs.runs()), len(self.shown_rows())
        if not n:
            self.message.setText("no run open: open a sweep's runs to compare them")
            return
        text = f"{n} run{'s' if n != 1 else ''}" + (f", reading {n - read}…" if read < n else "")
        hidden = getattr(self, "_hidden_config", 0)
        if hidden:
            why = "past the column limit" if self.every_key.isChecked() else "tick 'every config key'"
            text += f" · {hidden} config key{'s' if hidden != 1 else ''} not shown ({why})"
        self.message.setText(text + " · click a header to sort, a row to make it current")

    def _sort_changed(self, *_) -> None:
        if not self._filling:
            self._user_sorted = True

    def _fill(self) -> None:
        self._filling = True
        try:
            self._fill_table()
        finally:
            self._filling = False

    def _fill_table(self) -> None:
        shown = self.shown_rows()
        rows = [r for _, r in shown]
        cols = columns(rows, self.every_key.isChecked())
        self._hidden_config = cols.hidden_config
        self._columns = cols
        advice_col = [ADVISOR_COLUMN] if self.advisor is not None else []
        key_results = [t for t in KEY_RESULTS if t in cols.values]
        other_values = [t for t in cols.values if t not in key_results]
        # (kind, name) of each column: a config key may be called "steps" too
        spec = [("run", "run"), *(("value", t) for t in key_results), *(("config", k) for k in cols.config),
                ("state", "state"), ("steps", "steps"), *(("advisor", t) for t in advice_col),
                *(("value", t) for t in other_values)]
        headers = [name for _, name in spec]
        sort_col = self.table.horizontalHeader().sortIndicatorSection()
        sort_order = self.table.horizontalHeader().sortIndicatorOrder()
        sort_title = self.table.horizontalHeaderItem(sort_col).text() if 0 <= sort_col < self.table.columnCount() \
            and self.table.horizontalHeaderItem(sort_col) else None
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        for j, (kind, title) in enumerate(spec):
            item = self.table.horizontalHeaderItem(j)
            if kind == "advisor":
                item.setToolTip("the advisor's findings: the worst severity, how many, which symptoms")
            elif kind == "config":
                item.setToolTip(f"config: {title}")
            elif kind == "value":
                names = {r.loss_names.get(title.split(" ")[0]) for r in rows} - {None}
                if title.startswith(("train loss", "val loss")) and names:
                    item.setToolTip(f"{title}: read from {', '.join(sorted(names))}")
        self.table.setRowCount(len(shown))
        best = {t: best_rows(rows, t) for t in cols.values}
        bold = QFont()
        bold.setBold(True)
        labels = row_labels(rows)     # a script run twice on one path: two rows named alike, told by their files
        for i, (entry, row) in enumerate(shown):
            name = _Item(labels[i], key=(1, 0.0, labels[i].lower()))
            name.setIcon(_swatch(entry.color))
            name.setData(Qt.UserRole, entry.key)
            name.setToolTip(str(entry.path))
            state = _Item(row.state, key=(1, 0.0, row.state))
            state.setForeground(QColor(theme.state_color(row.state)))
            steps = _Item("" if row.steps is None else str(row.steps))
            cell = {("run", "run"): name, ("state", "state"): state, ("steps", "steps"): steps}
            if advice_col:
                cell[("advisor", ADVISOR_COLUMN)] = self._advice_item(entry, row)
            for k in cols.config:
                item = _Item(row.config.get(k, "–"))
                item.setToolTip(f"{k} = {row.config[k]}" if k in row.config else f"{k}: not in this run's config")
                cell[("config", k)] = item
            for t in cols.values:
                v = row.values.get(t)
                text = "–" if v is None else fmt_value(v)
                item = _Item(text, key=_sort_key(v, text))
                if v is not None:
                    item.setToolTip(repr(v))
                if i in best[t]:
                    item.setFont(bold)
                cell[("value", t)] = item
            for j, kind_name in enumerate(spec):
                item = cell[kind_name]
                if kind_name[0] not in ("run", "state", "advisor"):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        if self._user_sorted and sort_title in headers:
            self.table.sortByColumn(headers.index(sort_title), sort_order)
        else:      # best first by default: the lowest validation loss (training loss without one)
            default = next((("value", t) for t in DEFAULT_SORT if ("value", t) in spec), None)
            if default is not None:
                self.table.sortByColumn(spec.index(default), Qt.AscendingOrder)
        self.table.resizeColumnsToContents()
        for j in range(self.table.columnCount()):
            self.table.setColumnWidth(j, min(self.table.columnWidth(j), COLUMN_MAX_PX))
        if advice_col:
            j = spec.index(("advisor", ADVISOR_COLUMN))
            self.table.setColumnWidth(j, min(self.table.columnWidth(j), ADVISOR_MAX_PX))
        self._select_current(self.runs.current)
        self._say()
        self.scatter.show_rows(shown, cols.values)

    def _advice_item(self, entry, row) -> _Item:
        result = self.advisor.result(entry.key) if self.advisor is not None else None
        if result is None:
            row.advice = ""
            return _Item("…" if self.advisor is not None else "", key=(9, 0.0, ""))
        text, worst, count = advice_text(*result)
        row.advice = text
        item = _Item(text, key=(0, -worst, -count, text))
        loud = worst >= Severity.WARNING.rank
        item.setForeground(QColor(theme.severity_color(Severity.ERROR if worst >= Severity.ERROR.rank else Severity.WARNING)
                                  if loud else theme.muted_color()))
        item.setToolTip("\n".join(f.title for f in result[0]) if result[0] else text)
        return item

    def _row_clicked(self, i: int, _j: int) -> None:
        key = self.table.item(i, 0).data(Qt.UserRole) if self.table.item(i, 0) else None
        entry = next((e for e in self.runs.runs() if e.key == key), None)
        if entry is not None:
            self.runs.set_current(entry)

    def _select_current(self, entry) -> None:
        for i in range(self.table.rowCount()):
            item = self.table.item(i, 0)
            if item is not None and entry is not None and item.data(Qt.UserRole) == entry.key:
                self.table.selectRow(i)
                return
        self.table.clearSelection()

    def table_rows(self) -> list:
        """The RunRows in the table's current (sorted) order."""
        by_key = dict(self.rows)
        keys = [self.table.item(i, 0).data(Qt.UserRole) for i in range(self.table.rowCount())]
        return [by_key[k] for k in keys if k in by_key]

    def csv_text(self) -> str:
        return to_csv(self.table_rows(), self._columns)

    def copy_csv(self) -> None:
        QApplication.clipboard().setText(self.csv_text())
