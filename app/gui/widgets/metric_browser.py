"""Metrics of all open runs grouped by name prefix (``train/``, ``val/``, ``sys/``), with a filter."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ...vocab import SYS_PREFIX

NO_PREFIX = "(no prefix)"


def group_of(name: str) -> str:
    return name.split("/", 1)[0] + "/" if "/" in name else NO_PREFIX


class MetricBrowser(QWidget):
    def __init__(self, runs, view, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.view = view
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter metrics (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree, 1)
        self.filter.textChanged.connect(self.apply_filter)
        self.tree.itemChanged.connect(self._on_item)
        runs.runAdded.connect(lambda _: self.rebuild())
        runs.runRemoved.connect(lambda _: self.rebuild())
        runs.runUpdated.connect(self._on_update)
        view.metricsChanged.connect(lambda _: self._sync_checks())
        self._names: list[str] = []
        self.rebuild()

    def _on_update(self, entry, n) -> None:
        if self.runs.metric_names() != self._names:
            self.rebuild()

    def rebuild(self) -> None:
        self._names = self.runs.metric_names()
        self.tree.blockSignals(True)
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for name in self._names:
            g = group_of(name)
            if g not in groups:
                groups[g] = QTreeWidgetItem(self.tree, [g])
                groups[g].setFlags(Qt.ItemIsEnabled)
                groups[g].setExpanded(g != SYS_PREFIX)
            leaf = QTreeWidgetItem(groups[g], [name])
            leaf.setData(0, Qt.UserRole, name)
            leaf.setToolTip(0, name)   # long names are cut off by the dock's width
            leaf.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable | Qt.ItemIsSelectable)
            leaf.setCheckState(0, Qt.Checked if name in self.view.metrics else Qt.Unchecked)
        self.tree.blockSignals(False)
        self.apply_filter(self.filter.text())

    def leaves(self):
        for i in range(self.tree.topLevelItemCount()):
            g = self.tree.topLevelItem(i)
            for j in range(g.childCount()):
                yield g.child(j)

    def visible_metrics(self) -> list[str]:
        return [leaf.data(0, Qt.UserRole) for leaf in self.leaves() if not leaf.isHidden()]

    def apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            g = self.tree.topLevelItem(i)
            shown = 0
            for j in range(g.childCount()):
                leaf = g.child(j)
                hide = bool(needle) and needle not in leaf.data(0, Qt.UserRole).lower()
                leaf.setHidden(hide)
                shown += not hide
            g.setHidden(shown == 0)
            if needle and shown:
                g.setExpanded(True)

    def _sync_checks(self) -> None:
        self.tree.blockSignals(True)
        for leaf in self.leaves():
            name = leaf.data(0, Qt.UserRole)
            leaf.setCheckState(0, Qt.Checked if name in self.view.metrics else Qt.Unchecked)
        self.tree.blockSignals(False)

    def _on_item(self, item, column) -> None:
        name = item.data(0, Qt.UserRole)
        if name:
            self.view.toggle_metric(name, item.checkState(0) == Qt.Checked)
