"""Metrics of all open runs grouped by name prefix (``train/``, ``val/``, ``sys/``), with a filter.

A run can log 50,000 metric names: the list is a :class:`MetricTreeModel` behind a
``QTreeView`` (rows are made only when scrolled into view), not one widget item per name
(a ``QTreeWidget`` of 50,000 items took 7 s to build and 2.4 s to re-check).
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QTreeView, QVBoxLayout, QWidget

from ...vocab import SYS_PREFIX
from .. import theme
from ..plain_text import shown, tip

NO_PREFIX = "(no prefix)"
GROUP_ID = 0   # internalId of a group row; a metric row holds its group's row + 1
EXPAND_MAX_ROWS = 5_000   # more metrics than this: groups start collapsed (the view lays out
                          # every row of an expanded group)
# Built once: the view asks for flags row by row, and or-ing enums costs 60 µs a call in Python.
GROUP_FLAGS = Qt.ItemIsEnabled
METRIC_FLAGS = Qt.ItemIsEnabled | Qt.ItemIsUserCheckable | Qt.ItemIsSelectable


def group_of(name: str) -> str:
    return name.split("/", 1)[0] + "/" if "/" in name else NO_PREFIX


class MetricTreeModel(QAbstractItemModel):
    """Two levels: prefix groups, then their metric names (checkable: plotted or not)."""

    toggled = Signal(str, bool)   # metric name, checked

    def __init__(self, parent=None):
        super().__init__(parent)
        self._groups: list[str] = []
        self._members: list[list[str]] = []
        self._checked: set[str] = set()

    # ------------------------------------------------------------ content
    def set_names(self, names, needle: str = "") -> None:
        """Show ``names`` (first-seen order within each group) whose lower-case form holds ``needle``."""
        groups: dict[str, list[str]] = {}
        for name in names:
            if not needle or needle in name.lower():
                groups.setdefault(group_of(name), []).append(name)
        self.beginResetModel()
        self._groups = list(groups)
        self._members = list(groups.values())
        self.endResetModel()

    def set_checked(self, names) -> None:
        self._checked = set(names)
        for g, members in enumerate(self._members):
            if members:
                self.dataChanged.emit(self.index(0, 0, self.index(g, 0)),
                                      self.index(len(members) - 1, 0, self.index(g, 0)), [Qt.CheckStateRole])

    def groups(self) -> list[str]:
        return list(self._groups)

    def names(self) -> list[str]:
        return [n for members in self._members for n in members]

    def name_of(self, index: QModelIndex) -> str | None:
        """The metric name of a metric row (None for a group row)."""
        if not index.isValid() or index.internalId() == GROUP_ID:
            return None
        return self._members[index.internalId() - 1][index.row()]

    # ------------------------------------------------------------ QAbstractItemModel
    def index(self, row: int, column: int = 0, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        if column != 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, 0, GROUP_ID) if 0 <= row < len(self._groups) else QModelIndex()
        if parent.internalId() == GROUP_ID and 0 <= row < len(self._members[parent.row()]):
            return self.createIndex(row, 0, parent.row() + 1)
        return QModelIndex()

    def parent(self, index: QModelIndex | None = None):
        if index is None:            # QObject.parent()
            return super().parent()
        if not index.isValid() or index.internalId() == GROUP_ID:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, GROUP_ID)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._groups)
        if parent.internalId() == GROUP_ID:
            return len(self._members[parent.row()])
        return 0

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 1

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid():
            return None
        if index.internalId() == GROUP_ID:
            return shown(self._groups[index.row()]) if role == Qt.DisplayRole else None
        name = self.name_of(index)
        if role == Qt.UserRole:
            return name
        if role == Qt.DisplayRole:
            return shown(name)
        if role == Qt.ToolTipRole:      # long names are cut by the dock; as typed, never HTML
            return tip(shown(name))
        if role == Qt.CheckStateRole:
            return Qt.Checked if name in self._checked else Qt.Unchecked
        return None

    def setData(self, index: QModelIndex, value, role: int = Qt.EditRole) -> bool:
        name = self.name_of(index)
        if name is None or role != Qt.CheckStateRole:
            return False
        on = Qt.CheckState(value) == Qt.Checked if not isinstance(value, Qt.CheckState) else value == Qt.Checked
        self.toggled.emit(name, on)
        return True

    def flags(self, index: QModelIndex):
        if not index.isValid():
            return Qt.NoItemFlags
        return GROUP_FLAGS if index.internalId() == GROUP_ID else METRIC_FLAGS

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        return not parent.isValid() or parent.internalId() == GROUP_ID


class MetricBrowser(QWidget):
    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter metrics (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        theme.readable_placeholder(self.filter)
        self.model = MetricTreeModel(self)
        self.tree = QTreeView()
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(True)   # lets the view skip measuring 50,000 rows
        self.tree.setTextElideMode(Qt.ElideMiddle)
        self.tree.setModel(self.model)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree, 1)
        self.filter.textChanged.connect(self.apply_filter)
        self.model.toggled.connect(self.view.toggle_metric)
        runs.runAdded.connect(lambda _: self._names_may_have_changed())
        runs.runRemoved.connect(lambda _: self._names_may_have_changed())
        runs.runUpdated.connect(lambda e, n: self._names_may_have_changed())
        view.metricsChanged.connect(lambda _: self.model.set_checked(self.view.metrics))
        self._names: list[str] = []
        self.rebuild()

    def _names_may_have_changed(self) -> None:
        if self.runs.metric_names() != self._names:
            self.rebuild()

    def rebuild(self) -> None:
        self._names = self.runs.metric_names()
        self.apply_filter(self.filter.text())

    def apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        self.model.set_checked(self.view.metrics)
        self.model.set_names(self._names, needle)
        few = len(self.model.names()) <= EXPAND_MAX_ROWS
        for g, name in enumerate(self.model.groups()):
            self.tree.setExpanded(self.model.index(g, 0), few and (bool(needle) or name != SYS_PREFIX))

    def groups(self) -> list[str]:
        """The prefix groups shown, in order."""
        return self.model.groups()

    def visible_metrics(self) -> list[str]:
        """The metric names the filter lets through, group by group."""
        return self.model.names()

    def set_checked(self, name: str, on: bool) -> None:
        """Tick or untick ``name`` as a click on its check box does."""
        for g in range(self.model.rowCount()):
            group = self.model.index(g, 0)
            for r in range(self.model.rowCount(group)):
                index = self.model.index(r, 0, group)
                if self.model.name_of(index) == name:
                    self.model.setData(index, Qt.Checked if on else Qt.Unchecked, Qt.CheckStateRole)
                    return
        raise KeyError(f"metric {name!r} is not in the list (filtered out?)")
