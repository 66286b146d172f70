"""The open runs, each with its colour and status; select one to inspect it."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QStyledItemDelegate, QVBoxLayout, QWidget,
)

from .. import theme
from ..model import FAILED, LOADING, READY
from ..plain_text import shown, tip
from .parts import NAME_CHARS, elide


def color_icon(color: str, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(color))
    return QIcon(pm)


ERROR_COLOR = "#C62828"
LOADING_COLOR = "#777777"
NO_RUN_COLOR = "#BBBBBB"     # icon of a row that is not (yet) an open run
LINE_SEPARATOR = "\u2028"


class RowDelegate(QStyledItemDelegate):
    """Paints a row's first line (the run's name) cut in its middle to the row's width (a
    sweep's names differ at their end) and the rest (its state, or why it failed) cut at the
    end, read from its start: the list's one elide mode cut the error in its middle ("not an
    HDF5 fil...rainspect run?)", trial14 L6). The item's text and tooltip stay whole."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        # Qt gives the item's "\n" as a line separator (U+2028) here
        text = option.text.replace("\n", LINE_SEPARATOR)
        first, sep, rest = text.partition(LINE_SEPARATOR)
        width = option.rect.width() - option.decorationSize.width() - 16
        if width > 0:
            option.text = option.fontMetrics.elidedText(first, Qt.ElideMiddle, width) + sep + rest
        option.textElideMode = Qt.ElideRight


class RunListWidget(QWidget):
    """One row per file: opening (grey), open (its colour and status) or failed (red, with
    the message in the tooltip). A failed row stays until closed; the other runs carry on."""

    openRequested = Signal()

    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.list = QListWidget()
        self.list.setToolTip("open runs (Delete closes the selected one)")
        # A 1,000-character run name must not widen the dock (and so the window): rows are
        # cut to the list's width with "…" and never wrap; the tooltip holds the whole text.
        # The status line (an error: "not an HDF5 file (…a trainspect run?)") is cut at its
        # end, read from its start (cut in the middle it read "not an HDF5 fil...rainspect
        # run?)", trial14 L6); the name line is cut in its middle (RowDelegate).
        self.list.setTextElideMode(Qt.ElideRight)
        self.delegate = RowDelegate(self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setWordWrap(False)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setSizeAdjustPolicy(QListWidget.AdjustIgnored)
        self.list.setMinimumWidth(80)
        self.add_button = QPushButton("Open…")
        self.remove_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)
        self.add_button.clicked.connect(self.openRequested)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.currentRowChanged.connect(self._on_row)
        # Rows change in bursts (50 runs opening): rebuild once per burst, after it.
        self._rebuild_soon = QTimer(self)
        self._rebuild_soon.setSingleShot(True)
        self._rebuild_soon.setInterval(0)
        self._rebuild_soon.timeout.connect(self.rebuild)
        runs.rowsChanged.connect(self._rebuild_soon.start)
        runs.runRemoved.connect(lambda _: self._rebuild_soon.start())
        runs.runUpdated.connect(lambda e, n: self._rebuild_soon.start())
        runs.currentChanged.connect(self._select)
        self.rebuild()

    def rebuild(self) -> None:
        self._rebuild_soon.stop()
        self.list.blockSignals(True)
        self.list.clear()
        for e in self.runs.rows():
            status = e.status_text()
            # The row names the file already: show the message without its path prefix.
            short = status[len(str(e.path)) + 2:] if status.startswith(f"{e.path}: ") else status
            # A crash message can be hundreds of characters: the list shows its start, the
            # tooltip (and Run details) the whole of it.
            icon = color_icon(e.color if e.state == READY else NO_RUN_COLOR)
            name = shown(e.name)
            item = QListWidgetItem(icon, f"{elide(name, NAME_CHARS)}\n{elide(short)}")
            item.setToolTip(tip(f"{name}\n{shown(e.path)}\n{status}"))   # as typed, never as HTML
            item.setData(Qt.UserRole, e.key)
            if e.state == FAILED or e.error and e.state == READY:
                item.setForeground(QBrush(QColor(theme.error_color())))
            elif e.state == LOADING:
                item.setForeground(QBrush(QColor(theme.muted_color())))
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._select(self.runs.current)

    def _select(self, entry) -> None:
        self.list.blockSignals(True)
        rows = self.runs.rows()
        self.list.setCurrentRow(rows.index(entry) if entry in rows else -1)
        self.list.blockSignals(False)

    def selected_entry(self):
        rows = self.runs.rows()
        row = self.list.currentRow()
        return rows[row] if 0 <= row < len(rows) else self.runs.current

    def _on_row(self, row: int) -> None:
        rows = self.runs.rows()
        if 0 <= row < len(rows) and rows[row].ready:
            self.runs.set_current(rows[row])

    def remove_selected(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.runs.remove(entry)
