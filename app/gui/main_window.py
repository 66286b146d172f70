"""The main window: assembles the panels around the two models and owns menus, shortcuts,
drag-and-drop, recent files and the error banner."""
from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QHeaderView,
    QLabel, QMainWindow, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QToolButton, QVBoxLayout,
    QWidget,
)

from ..fd_budget import runs_that_fit
from ..run_paths import expand_runs, run_file
from ..tensorboard_runs import is_tensorboard
from .live import LiveTail
from .plain_text import plain, shown, tip
from . import main_thread_gc, theme
from .model import RunsModel, ViewState, default_metrics
from .qt_messages import quiet_qt_noise
from .export_actions import install_export_actions
from .settings import add_recent, clear_recent, make_settings, recent_files
from .widgets.advisor_panel import AdvisorPanel
from .widgets.compare_runs import CompareRunsPanel
from .widgets.details import DetailsPanel
from .widgets.distributions import DistributionsPanel
from .widgets.heatmap import HeatmapPanel
from .widgets.step_align import StepColumns
from .widgets.lr_sweep import LRSweepPanel, sweep_entry
from .widgets.metric_browser import MetricBrowser
from .widgets.parts import NAME_CHARS, elide, shrinkable
from .widgets.ranks_panel import RanksPanel
from .widgets.remote_dialog import OpenRemoteDialog
from .remote_runs import RemoteRuns
from .. import rank_view, remote
from trainspect.analysis.ranks import fold_rank_paths
from trainspect.analysis.vocab import RunState
from .widgets.run_list import RunListWidget
from .heap import return_big_blocks
from .widgets.scalar_plots import ScalarPlotPanel

CLOSE_WAIT_S = 5.0    # closing the window waits this long for background reads to end
RUN_FILTER = "trainspect runs (*.h5 *.hdf5);;All files (*)"
RUN_STATE_MAX_PX = 420   # the run state in the status bar: wider text is cut (full text in its tooltip)
# Narrower than this, the Advisor dock shares the left column with Runs as a tab: beside them
# at 800 px it got 74 px, a word per line. Wider than WIDE_WINDOW_PX it goes back to the right.
NARROW_WINDOW_PX = 1000
WIDE_WINDOW_PX = 1100
DOCK_WIDTHS = (230, 420)         # Runs, Advisor
NARROW_DOCK_PX = 260             # the shared left column of a narrow window
OPTIONAL_TABS_MS = 1000          # how often the Ranks / LR range test tabs look for something to show
NEXT_FINDING_KEYS = ("N", "Alt+Down")
PREVIOUS_FINDING_KEYS = ("P", "Alt+Up")


def action_text(action) -> str:
    """An action's menu text without its "&" accelerator marks and "…"."""
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


class ShortcutsDialog(QDialog):
    """Help > Keyboard shortcuts: every shortcut of the window's actions, read from the actions
    themselves (a new action is listed without touching this)."""

    def __init__(self, rows, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts — trainspect")
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["keys", "action", "menu"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        for r, (menu, text, keys) in enumerate(rows):
            for c, value in enumerate((keys, text, menu)):
                self.table.setItem(r, c, QTableWidgetItem(value))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(buttons)
        self.resize(520, min(760, 90 + (self.fontMetrics().height() + 8) * (len(rows) + 1)))


BANNER_LINES = 4      # errors listed in the banner; the rest in its tooltip ("… and 3 more")


class ErrorBanner(QFrame):
    """A dismissible red strip naming the files that failed; the app carries on. Every error
    since it was last closed is listed, one per file (it showed only the last: three bad files
    read as one; trial14 L6): "3 files could not be opened or read:", then each name and why."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setStyleSheet("ErrorBanner{background:#FDECEA;border:1px solid #E57373;border-radius:3px}")
        self.label = plain(shrinkable(QLabel()))   # a message naming a long path wraps, never widens
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.messages: dict[str, str] = {}    # path (or the message itself) -> its latest error
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.hide()

    def dismiss(self) -> None:
        self.messages.clear()
        self.hide()

    def show_message(self, text: str, path: str | None = None) -> None:
        self.messages.pop(path or text, None)
        self.messages[path or text] = text       # the newest last
        items = list(self.messages.values())
        if len(items) == 1:
            shown_text, full = text, text
        else:
            lines = [f"• {m}" for m in items]
            head = f"{len(items)} files could not be opened or read:"
            more = len(lines) - BANNER_LINES
            shown_text = "\n".join([head, *lines[:BANNER_LINES]] + ([f"… and {more} more (hover to see all)"] if more > 0 else []))
            full = "\n".join([head, *lines])
        self.label.setText(shown_text)
        self.label.setToolTip(tip(full))
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, settings=None, parent=None):
        super().__init__(parent)
        main_thread_gc.acquire()    # before any reader thread starts: they must never collect Qt objects
        self._gc_held = True
        self.setWindowTitle("trainspect")
        self.settings = settings if settings is not None else make_settings()
        self.errors: list[str] = []
        self.runs = RunsModel(self)
        self.view = ViewState(self)

        self.scalars = ScalarPlotPanel(self.runs, self.view)
        self.heatmap = HeatmapPanel(self.runs, self.view)
        self.distributions = DistributionsPanel(self.runs, self.view)
        self.details = DetailsPanel(self.runs)
        self.advisor = AdvisorPanel(self.runs, self.view)
        self.compare = CompareRunsPanel(self.runs, self.advisor)   # every open run as a row: which setting trained best
        self.lr_sweep = LRSweepPanel(self.runs)
        self.run_list = RunListWidget(self.runs)
        self.metrics = MetricBrowser(self.runs, self.view)
        self.banner = ErrorBanner()

        self.tabs = QTabWidget()
        self.tabs.addTab(self.heatmap, "Layers")
        self.tabs.addTab(self.distributions, "Distributions")
        self.tabs.addTab(self.details, "Run details")
        self.tabs.addTab(self.compare, "Compare")
        self.ranks = RanksPanel(self.runs, self.view)   # a distributed run's ranks side by side
        self.tabs.addTab(self.ranks, "Ranks")
        self.tabs.addTab(self.lr_sweep, "LR range test")
        # Ranks and LR range test show only when an open run has something for them (a
        # distributed run, an LR range test), or when asked for (View > Show ...); trial14 L5.
        self._forced_tabs: set = set()
        self.tabs.currentChanged.connect(self._on_tab)
        for panel in (self.ranks, self.lr_sweep):
            self.tabs.setTabVisible(self.tabs.indexOf(panel), False)
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.addWidget(self.scalars)
        self.splitter.addWidget(self.tabs)
        # The scalar plots get the larger share, also when the window grows or shrinks: on a
        # 1366x768 laptop, half the height left four plots ~35 px each, their y labels overlapping.
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([600, 400])
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.banner)
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        # A Layers tab with nothing to show (no open run has per-layer records) shrinks to its
        # tab bar and one line; the plots get the room (it took 40 % of the window; trial14 L5).
        self._layer_data: dict[str, bool] = {}     # run key -> it has per-layer statistics
        self._tab_sizes = None                     # the splitter's sizes before it collapsed
        self.heatmap.layerDataKnown.connect(self._on_layer_data)
        # One step, one x: the heatmap shows the plots' steps over the same window x (trial14 M2).
        self.scalars.shownStepsChanged.connect(self.heatmap.follow_steps)
        self.step_columns = StepColumns(self, self.scalars, self.heatmap)
        self.tabs.currentChanged.connect(self.step_columns.schedule)
        self.heatmap.layerDataKnown.connect(self.step_columns.schedule)
        self.view.metricsChanged.connect(self.step_columns.schedule)

        left = QSplitter(Qt.Vertical)
        left.addWidget(self.run_list)
        left.addWidget(self.metrics)
        left.setSizes([160, 500])
        self.runs_dock = self._dock("Runs", left, Qt.LeftDockWidgetArea)
        self.advisor_dock = self._dock("Advisor", self.advisor, Qt.RightDockWidgetArea)
        self.resizeDocks([self.runs_dock, self.advisor_dock], list(DOCK_WIDTHS), Qt.Horizontal)
        self._advisor_tabbed = False     # moved beside Runs by a narrow window (not by the user)

        # Live runs: adaptive polling, run states, follow mode (app/gui/live.py).
        self.live = LiveTail(self.runs, self.view, self)
        self._build_actions()
        self.export_actions = install_export_actions(self)   # File > Export report / plot / CSV
        self.setAcceptDrops(True)
        self.runs.errorOccurred.connect(self.show_error)
        self.remote = RemoteRuns(self.runs, self)     # ssh:// runs: local mirrors kept by follower processes
        self.remote.failed.connect(lambda url, message: self.show_error(url, message))
        self.remote.notice.connect(lambda text: self.statusBar().showMessage(text, 10000))
        # A file opened in a live run's first second: say we wait (the model retries it).
        self.runs.runStarting.connect(lambda path, message: self.statusBar().showMessage(message))
        self.runs.runAdded.connect(self._on_run_added)
        # A run resumed or replaced under the window is shown anew; say so (its row says it too).
        self.runs.runRestarted.connect(lambda e, message: self.statusBar().showMessage(message, 15000))
        self._recent_dirty = QTimer(self)    # one menu rebuild per burst of opened runs
        self._recent_dirty.setSingleShot(True)
        self._recent_dirty.setInterval(0)
        self._recent_dirty.timeout.connect(self._rebuild_recent_menu)
        self.runs.runAdded.connect(self._remember_recent)
        self.runs.currentChanged.connect(
            lambda e: self.setWindowTitle(f"{elide(shown(e.name), NAME_CHARS)} — trainspect" if e is not None else "trainspect"))
        self.run_list.openRequested.connect(self.open_dialog)
        self.heatmap.view.findingFocused.connect(lambda _: self.tabs.setCurrentWidget(self.heatmap))
        # Not shrinkable(): the status bar gave an Ignored-width label 0 px; capped instead.
        self.run_state = QLabel("")
        self.run_state.setTextFormat(Qt.RichText)   # our colour; the text in it is escaped
        self.run_state.setMaximumWidth(RUN_STATE_MAX_PX)
        # A live run the view does not follow (a finding was clicked, or the user zoomed): say so
        # and how to follow again (its view kept the click-time steps, and nothing said so; N3).
        self.follow_note = QLabel("")
        self.follow_note.setTextFormat(Qt.PlainText)
        self.follow_note.setVisible(False)
        self.statusBar().addPermanentWidget(self.follow_note)
        self.statusBar().addPermanentWidget(self.run_state)
        self.live.followChanged.connect(lambda _: self._show_follow_note())
        self.live.statusChanged.connect(lambda e, st: self._show_follow_note())
        self.runs.currentChanged.connect(lambda e: self._show_follow_note())
        self.view.stepRangeChanged.connect(lambda _: self._show_follow_note())
        self.live.statusChanged.connect(lambda e, st: self.run_list.rebuild())
        self.live.statusChanged.connect(lambda e, st: self._show_run_state())
        self.runs.runUpdated.connect(lambda e, n: e is self.runs.current and self._show_run_state())
        self.runs.currentChanged.connect(lambda e: self._show_run_state())
        # An LR range test is read against the LR, not the step: show its tab when it is selected.
        self.runs.currentChanged.connect(lambda e: self.lr_sweep.sweep_is_current(e) and self.tabs.setCurrentWidget(self.lr_sweep))
        self.runs.runRemoved.connect(self._on_run_removed)
        self.runs.runAdded.connect(lambda e: self._update_optional_tabs())
        self.runs.currentChanged.connect(lambda e: self._fit_tab_area())
        self._tabs_timer = QTimer(self)    # a run is known to be distributed after a background read
        self._tabs_timer.setInterval(OPTIONAL_TABS_MS)
        self._tabs_timer.timeout.connect(self._update_optional_tabs)
        self._tabs_timer.start()
        # A finding focused while the Advisor is tabbed behind Runs (a narrow window): bring its
        # details to the front; the plots zoomed to it while its text stayed hidden (trial14 L10).
        self.view.findingFocused.connect(lambda _: self._show_advisor())
        self.restore_state()

    def _dock(self, title, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------ actions
    def _action(self, menu, text, slot, shortcut=None, checkable=False) -> QAction:
        act = QAction(text, self)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        menu.addAction(act)
        self.addAction(act)  # shortcuts work even with the menu bar hidden
        return act

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open run…", self.open_dialog, QKeySequence.Open)
        self._action(f, "Open &folder…", self.open_folder_dialog, "Ctrl+Shift+D")
        self._action(f, "Open re&mote…", self.open_remote_dialog, "Ctrl+Shift+O")
        self.recent_menu = f.addMenu("Open &recent")
        self._action(f, "&Close run", self.close_current, "Ctrl+W")
        self._action(f, "Re&fresh", lambda: self.runs.refresh_async(), "F5")
        f.addSeparator()
        self._action(f, "&Quit", self.close, "Ctrl+Q")
        v = mb.addMenu("&View")
        self.log_action = self._action(v, "&Log y axis", lambda on: self.view.set_log_y(on), "L", checkable=True)
        self.view.logYChanged.connect(self.log_action.setChecked)
        self.combine_action = self._action(v, "Train and val loss on one &plot", self.view.set_combine_losses, "C",
                                           checkable=True)
        self.combine_action.setChecked(self.view.combine_losses)
        self.view.combineLossesChanged.connect(self.combine_action.setChecked)
        self._action(v, "&Reset view", self.view.reset_view, "R")
        self._action(v, "Cycle &x axis (step / wall / relative)", self.view.cycle_x_mode, "X")
        self._action(v, "More smoothing", lambda: self.view.set_smoothing(min(0.99, round(self.view.smoothing + 0.1, 2))), "]")
        self._action(v, "Less smoothing", lambda: self.view.set_smoothing(max(0.0, round(self.view.smoothing - 0.1, 2))), "[")
        self._action(v, "&Filter metrics", self._focus_filter, QKeySequence.Find)
        v.addSeparator()
        for i in range(self.tabs.count()):
            self._action(v, f"Show {self.tabs.tabText(i)}", lambda _=False, i=i: self.show_tab(i), f"Ctrl+{i + 1}")
        v.addSeparator()
        self.next_finding_action = self._action(v, "&Next finding", lambda: self.advisor.step_finding(1), NEXT_FINDING_KEYS[0])
        self.next_finding_action.setShortcuts([QKeySequence(k) for k in NEXT_FINDING_KEYS])
        self.previous_finding_action = self._action(v, "&Previous finding", lambda: self.advisor.step_finding(-1),
                                                    PREVIOUS_FINDING_KEYS[0])
        self.previous_finding_action.setShortcuts([QKeySequence(k) for k in PREVIOUS_FINDING_KEYS])
        self.follow_action = self._action(v, "&Follow live data", self.live.set_follow, "F", checkable=True)
        self.follow_action.setChecked(self.live.follow)
        self.follow_action.setToolTip("keep the newest step in view (F); panning or zooming stops following")
        self.live.followChanged.connect(self.follow_action.setChecked)
        self.live_toolbar = self.addToolBar("Live")
        self.live_toolbar.setObjectName("toolbar_live")
        self.live_toolbar.addAction(self.follow_action)
        v.addSeparator()
        v.addAction(self.runs_dock.toggleViewAction())
        v.addAction(self.advisor_dock.toggleViewAction())
        self.help_menu = mb.addMenu("&Help")
        self._action(self.help_menu, "&Keyboard shortcuts…", self.show_shortcuts, QKeySequence.HelpContents)
        self._rebuild_recent_menu()

    def _focus_filter(self) -> None:
        self.runs_dock.show()
        self.metrics.filter.setFocus()
        self.metrics.filter.selectAll()

    # ------------------------------------------------------------ help
    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(menu, action, keys) of every action of the window that has a shortcut, in menu order,
        read from the actions (Help > Keyboard shortcuts)."""
        rows, seen = [], set()

        def walk(menu, path):
            for act in menu.actions():
                if act.menu() is not None:
                    walk(act.menu(), f"{path} › {action_text(act.menu().menuAction())}")
                elif act.shortcuts() and id(act) not in seen:
                    seen.add(id(act))
                    rows.append((path, action_text(act), self._keys(act)))
        for top in self.menuBar().actions():
            if top.menu() is not None:
                walk(top.menu(), action_text(top))
        for act in self.actions():       # a shortcut of the window not in a menu
            if act.shortcuts() and id(act) not in seen:
                seen.add(id(act))
                rows.append(("", action_text(act), self._keys(act)))
        return rows

    @staticmethod
    def _keys(act) -> str:
        return ", ".join(k.toString(QKeySequence.NativeText) for k in act.shortcuts())

    def show_shortcuts(self) -> QDialog:
        dialog = getattr(self, "shortcuts_dialog", None)
        if dialog is not None:
            dialog.close()
            dialog.deleteLater()
        self.shortcuts_dialog = ShortcutsDialog(self.shortcut_rows(), self)
        self.shortcuts_dialog.show()
        return self.shortcuts_dialog

    # ------------------------------------------------------------ tabs
    def show_tab(self, index: int) -> None:
        """Bring tab ``index`` to the front (View > Show ...), shown even if it has nothing yet."""
        widget = self.tabs.widget(index)
        self._forced_tabs.add(widget)
        self.tabs.setTabVisible(index, True)
        self.tabs.setCurrentIndex(index)

    def _on_tab(self, index: int) -> None:
        if index >= 0 and not self.tabs.isTabVisible(index):   # made current by code: show its tab
            self._forced_tabs.add(self.tabs.widget(index))
            self.tabs.setTabVisible(index, True)
        self._fit_tab_area()

    def _update_optional_tabs(self) -> None:
        """Show the Ranks tab while a distributed run is open and the LR range test tab while an
        LR range test is (no file access: what background reads learnt)."""
        runs = self.runs.runs()
        wanted = {self.ranks: any(rank_view.known(e) for e in runs), self.lr_sweep: sweep_entry(self.runs) is not None}
        for panel, on in wanted.items():
            i = self.tabs.indexOf(panel)
            on = on or panel in self._forced_tabs or self.tabs.currentIndex() == i
            if self.tabs.isTabVisible(i) != on:
                self.tabs.setTabVisible(i, on)

    def _on_layer_data(self, entry, has: bool) -> None:
        self._layer_data[entry.key] = has
        self._fit_tab_area()

    def _on_run_removed(self, entry) -> None:
        self._layer_data.pop(entry.key, None)
        self._update_optional_tabs()
        self._fit_tab_area()

    def layers_empty(self) -> bool:
        """The current run has no per-layer statistics, nor has any other open run (as far as
        the Layers tab has read them)."""
        e = self.runs.current
        if e is None or self._layer_data.get(e.key) is not False:
            return False
        return not any(self._layer_data.get(o.key) for o in self.runs.runs())

    def _collapsed_px(self) -> int:
        """The Layers tab's height when it has nothing to show: its tab bar, the run's name and
        the message saying why (wrapped to the tab's width)."""
        hm = self.heatmap
        width = max(200, self.tabs.width() - 24)
        lines = hm.message.fontMetrics().lineSpacing()
        message = max(hm.message.heightForWidth(width), 2 * lines) if hm.message.text() else lines
        hm.message.setMinimumHeight(message)    # the (hidden) map below would take its lines
        return self.tabs.tabBar().sizeHint().height() + hm.run_label.sizeHint().height() + message + 30

    def _fit_tab_area(self) -> None:
        collapse = self.layers_empty() and self.tabs.currentWidget() is self.heatmap
        if collapse:
            sizes = self.splitter.sizes()
            if self._tab_sizes is None:
                self._tab_sizes = sizes
            small = self._collapsed_px()
            # below the pages' minimum (the Ranks tab's heatmaps ask 214 px): only while empty
            self.tabs.setMinimumHeight(small)
            if sizes[1] != small:
                self.splitter.setSizes([max(0, sum(sizes) - small), small])
            self.splitter.setStretchFactor(1, 0)    # a taller window gives the plots the room
        elif self._tab_sizes is not None:
            sizes, self._tab_sizes = self._tab_sizes, None
            self.tabs.setMinimumHeight(0)
            self.heatmap.message.setMinimumHeight(0)
            self.splitter.setStretchFactor(1, 2)
            self.splitter.setSizes(sizes)

    def _show_advisor(self) -> None:
        """The Advisor's details in view: raised where it is tabbed behind Runs."""
        dock = self.advisor_dock
        if not dock.isHidden() and self.tabifiedDockWidgets(dock):
            dock.raise_()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = recent_files(self.settings)
        for path in items:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(items))

    def _clear_recent(self) -> None:
        clear_recent(self.settings)
        self._rebuild_recent_menu()

    # ------------------------------------------------------------ opening
    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open trainspect runs", "", RUN_FILTER)
        self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        """A folder of runs (a sweep), or a TensorBoard log directory, like ``trainspect open DIR``."""
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of trainspect runs or TensorBoard logs")
        if folder:
            self.open_paths([folder])

    def expand_folders(self, paths) -> list[str]:
        """``paths`` with each local folder replaced by the runs in it, as ``trainspect open DIR``
        does (run_paths.expand_runs: its ``*.h5`` files, else the TensorBoard runs below it).
        A folder was opened as a file ("sweep: is a directory, not a run file"). TensorBoard
        logs are converted on a background reader and open when converted; a folder with
        nothing to open is reported in the banner."""
        out = []
        for p in paths:
            if remote.is_remote(p) or not (Path(p).is_dir() or is_tensorboard(p)):
                out.append(p)
                continue
            found = expand_runs([p]) if Path(p).is_dir() else [p]
            if not found:
                self.runs.errorOccurred.emit(p, f"{p}: no run files (*.h5) or TensorBoard logs in this folder")
            for f in found:
                if Path(f).suffix == ".h5" and Path(f).is_file():
                    out.append(f)
                else:
                    self._convert_tensorboard(f)
        return out

    def _convert_tensorboard(self, path: str) -> None:
        self.statusBar().showMessage(f"converting TensorBoard logs {path}…", 10000)
        self.runs.io.submit(lambda: run_file(path), lambda converted: self.open_paths([converted]),
                            lambda exc: self.runs.errorOccurred.emit(path, str(exc)))

    def open_remote_dialog(self) -> None:
        dialog = OpenRemoteDialog(self.settings, self)
        if dialog.exec():
            self.open_paths([dialog.url()])

    def open_paths(self, paths) -> list:
        """Open files on background threads; returns their rows at once (see ``wait_loaded``).

        Each file gets a row right away; it turns into an open run, or into an error row
        (the banner names the file), when its read comes back. The window never waits.
        ssh:// URLs go to RemoteRuns (their mirror opens here once it has data); a rank-k file
        whose rank 0 is opened too is read through rank 0's run (the Ranks tab)."""
        paths = fold_rank_paths(self.expand_folders([str(p) for p in paths]))
        for url in (p for p in paths if remote.is_remote(p)):
            self.remote.open(url)
        local = [p for p in paths if not remote.is_remote(p)]
        fit, limit = runs_that_fit(len(self.runs.rows()) + len(local)) if local else (0, None)
        fit = max(0, fit - len(self.runs.rows()))
        if fit < len(local):
            # each open run holds a file: past `ulimit -n` nothing else (a screenshot, a report) could open
            self.runs.errorOccurred.emit(local[fit], f"opened {fit} of {len(local)} runs: the open-file limit (ulimit -n {limit}) "
                                        "leaves room for no more; raise it (e.g. ulimit -n 4096) to open them all")
            local = local[:fit]
        return self.runs.open_async(local)

    def wait_background(self, timeout_s: float = 10.0) -> bool:
        """Process events until the background reads are done and every open run's rank files
        have been looked at, then show the optional tabs that they call for (a screenshot is
        then the same picture every time). False when ``timeout_s`` passed first."""
        app = QApplication.instance()
        end = time.monotonic() + timeout_s
        done = False
        while time.monotonic() < end:
            app.processEvents()
            entries = [e for e in self.runs.runs() if e.ready]
            if not self.runs.io.outstanding() and all(rank_view.known(e) is not None for e in entries):
                done = True
                break
            time.sleep(0.01)
        self._update_optional_tabs()
        return done

    def wait_loaded(self, timeout_s: float = 60.0) -> bool:
        """Process events until every file asked for is open or failed (tests, screenshots)."""
        return self.runs.wait_loaded(timeout_s)
    def _remember_recent(self, entry) -> None:
        add_recent(self.settings, str(entry.path))
        self._recent_dirty.start()

    def close_current(self) -> None:
        if self.runs.current is not None:
            self.runs.remove(self.runs.current)

    def _on_run_added(self, entry) -> None:
        if self.statusBar().currentMessage().endswith("waiting for the writer…"):
            self.statusBar().clearMessage()
        if not self.view.metrics:
            self.view.set_metrics(default_metrics(self.runs.metric_names(), declared=self.runs.declared_roles()))

    def show_error(self, path: str, message: str) -> None:
        self.errors.append(message)
        self.banner.show_message(message, path)
        self.statusBar().showMessage(message, 10000)

    def _show_run_state(self) -> None:
        """The current run's state in the status bar: live / finished at step N / writer stopped."""
        e = self.runs.current
        st = self.live.status(e) if e is not None else None
        if e is None:
            self.run_state.setText("")
            return
        text = e.with_notice(st.describe(clock=True)) if st is not None else e.status_text()
        text = shown(text)
        color = theme.state_color(st.state) if st is not None else theme.muted_color()
        # The text can hold a crash message ("expected <class ...>"): escape it.
        # A long crash message must not widen the window: cut to the label's width (full text
        # in the tooltip).
        cut = self.run_state.fontMetrics().elidedText(text, Qt.ElideRight, RUN_STATE_MAX_PX - 8)
        self.run_state.setText(f"<span style='color:{color}'>{html.escape(cut)}</span>")
        self.run_state.setToolTip(tip(text))

    def _show_follow_note(self) -> None:
        """'not following the live data' while a live run is open and the view holds still."""
        live = any(st is not None and st.state == RunState.LIVE for st in (self.live.status(e) for e in self.runs.runs()))
        held = live and not self.live.follow
        if held:
            rng = self.view.step_range
            # the view's padding reaches below step 0 ("showing steps -7–207"): no step is there
            where = f"steps {max(0.0, rng[0]):.0f}–{rng[1]:.0f}" if rng is not None else "a fixed range"
            self.follow_note.setText(f"not following the live data (showing {where}): press F to follow")
            self.follow_note.setStyleSheet(f"color:{theme.severity_color('warning')};font-weight:bold")
        self.follow_note.setVisible(held)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_docks()

    def _fit_docks(self) -> None:
        """A narrow window tabs the Advisor with Runs on the left; a wide one puts it back."""
        dock = self.advisor_dock
        if dock.isFloating() or dock.isHidden():
            return
        width = self.width()
        if width < NARROW_WINDOW_PX and not self._advisor_tabbed and self.dockWidgetArea(dock) == Qt.RightDockWidgetArea:
            self._advisor_tabbed = True
            self.tabifyDockWidget(self.runs_dock, dock)
            # Runs in front, unless a finding is selected: its details stay in view (L10)
            (dock if self.advisor.selected_finding() is not None else self.runs_dock).raise_()
            self.resizeDocks([self.runs_dock], [NARROW_DOCK_PX], Qt.Horizontal)
        elif width >= WIDE_WINDOW_PX and self._advisor_tabbed:
            self._advisor_tabbed = False
            self.addDockWidget(Qt.RightDockWidgetArea, dock)
            self.resizeDocks([self.runs_dock, dock], list(DOCK_WIDTHS), Qt.Horizontal)

    # ------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    # ------------------------------------------------------------ state
    def restore_state(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        split = s.value("window/splitter")
        if split is not None:
            self.splitter.restoreState(split)
        try:
            self.view.set_smoothing(float(s.value("view/smoothing", self.view.smoothing)))
        except (TypeError, ValueError):
            pass

    def save_state(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("view/smoothing", self.view.smoothing)
        s.sync()

    def closeEvent(self, event) -> None:
        self.live.stop()
        self.remote.stop()
        self.save_state()
        # Reads still running when Python exits can crash it inside HDF5: let them end (a
        # hung one is left behind after CLOSE_WAIT_S; its thread is a daemon).
        self.advisor.jobs.wait(CLOSE_WAIT_S)
        self.runs.io.stop(CLOSE_WAIT_S)
        self.runs.close_all()
        super().closeEvent(event)
        if self._gc_held:
            self._gc_held = False
            main_thread_gc.release()


def dispose_window(window) -> None:
    """Close and delete ``window`` now, while Python still runs: left to interpreter exit, a
    late layout event reached pyqtgraph's Python overrides after Python was gone (a crash at
    exit of `trainspect open`)."""
    window.close()
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def ensure_app() -> QApplication:
    app = QApplication.instance()
    quiet_qt_noise()
    if app is None:
        return_big_blocks()    # transient reads of long runs do not stay resident (see heap)
        app = QApplication([])
        app.setApplicationName("trainspect")
        app.setOrganizationName("trainspect")
    return app


def render_screenshot(window: MainWindow, path, settle_ms: int = 150) -> Path:
    """Lay out, paint and save the window to a PNG (works offscreen)."""
    app = QApplication.instance()
    window.show()
    for _ in range(3):
        app.processEvents()
    deadline = QTimer()   # let queued layout/range updates run before painting
    deadline.setSingleShot(True)
    deadline.start(settle_ms)
    while deadline.isActive():
        app.processEvents()
    window.heatmap.refresh_image()
    app.processEvents()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"cannot write screenshot to {path}")
    return path
