"""The open runs, each with its colour and status; select one to inspect it."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


def color_icon(color: str, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(color))
    return QIcon(pm)


def elide(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunListWidget(QWidget):
    openRequested = Signal()

    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.list = QListWidget()
        self.list.setToolTip("open runs (Delete closes the selected one)")
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
        runs.runAdded.connect(lambda _: self.rebuild())
        runs.runRemoved.connect(lambda _: self.rebuild())
        runs.runUpdated.connect(lambda e, n: self.rebuild())
        runs.currentChanged.connect(self._select)
        self.rebuild()

    def rebuild(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for e in self.runs.runs():
            status = e.status_text()
            # A crash message can be hundreds of characters: the list shows its start, the
            # tooltip (and Run details) the whole of it.
            item = QListWidgetItem(color_icon(e.color), f"{e.name}\n{elide(status)}")
            item.setToolTip(f"{e.path}\n{status}")
            item.setData(Qt.UserRole, e.key)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._select(self.runs.current)

    def _select(self, entry) -> None:
        self.list.blockSignals(True)
        row = self.runs.runs().index(entry) if entry in self.runs.runs() else -1
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)

    def _on_row(self, row: int) -> None:
        runs = self.runs.runs()
        if 0 <= row < len(runs):
            self.runs.set_current(runs[row])

    def remove_selected(self) -> None:
        if self.runs.current is not None:
            self.runs.remove(self.runs.current)
