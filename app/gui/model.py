"""The app's models: plain Python state with Qt signals, no widgets.

Widgets are built from these models and listen to them; tests drive the models and read the
widgets. Nothing here imports QtWidgets or pyqtgraph (checked by a test), and all file access
goes through ``analysis`` (never h5py).

- :class:`RunsModel`: the open runs, their colours, the current run; ``poll()`` calls
  ``run.refresh()`` and emits ``runUpdated`` so live runs grow in place.
- :class:`ViewState`: what the plots show: metrics, x axis, smoothing, log-y, step range,
  highlighted span, heatmap statistic, selected layers.
"""
from __future__ import annotations

import colorsys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from trainspect.analysis import RunFileError, open_run

from ..vocab import META_ROLES, SYS_GRAD_NORM, SYS_LR, is_sys, loss_roles
from .run_io import GuardedRun

# Colour-blind-friendly, distinct on white (Okabe-Ito first, then tab10 leftovers).
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF",
)
X_MODES = ("step", "wall", "relative")
DEFAULT_MAX_METRICS = 4
# A file opened in a live run's first moments (created, layout not written or not flushed
# yet) fails with one of these; the model retries it instead of failing for good.
STARTING_ERRORS = ("run is starting", "truncated run file", "cannot open as HDF5")
START_WAIT_S = 30.0        # give up (and show the error) after this long
START_RETRY_MS = 250


class RunEntry:
    """One open run: the reader object, its colour and a cache of the series plotted."""

    def __init__(self, run, color: str):
        self.run = run
        self.color = color
        self.path = Path(run.path)
        self._series: dict = {}

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def key(self) -> str:
        return str(self.path.resolve())

    def series(self, name: str):
        """The run's series for ``name`` or None if the run has no such metric (cached)."""
        if name not in self._series:
            try:
                self._series[name] = self.run.scalar(name)
            except KeyError:
                self._series[name] = None
        return self._series[name]

    def invalidate(self) -> None:
        self._series.clear()

    def status_text(self) -> str:
        try:
            return self.run.status().describe()
        except Exception as exc:  # a damaged status must not break the run list
            return f"status unreadable ({exc})"

    def __repr__(self):
        return f"RunEntry({self.name!r}, {self.color})"


class RunsModel(QObject):
    """The runs open in the app. Errors never raise into the UI: they are emitted."""

    runAdded = Signal(object)          # RunEntry
    runRemoved = Signal(object)        # RunEntry (already closed)
    runUpdated = Signal(object, int)   # RunEntry, number of new rows from refresh()
    currentChanged = Signal(object)    # RunEntry or None
    errorOccurred = Signal(str, str)   # path, message (names the file)
    runStarting = Signal(str, str)     # path, message: waiting for a just-created run file

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[RunEntry] = []
        self._current: RunEntry | None = None
        self._starting: dict[str, tuple[Path, float]] = {}   # key -> (path, give-up time)
        self._start_timer = QTimer(self)
        self._start_timer.setInterval(START_RETRY_MS)
        self._start_timer.timeout.connect(self._retry_starting)

    # ------------------------------------------------------------ queries
    def runs(self) -> list[RunEntry]:
        return list(self._entries)

    def __len__(self):
        return len(self._entries)

    def find(self, path) -> RunEntry | None:
        key = str(Path(path).resolve())
        return next((e for e in self._entries if e.key == key), None)

    @property
    def current(self) -> RunEntry | None:
        return self._current

    def declared_roles(self) -> dict:
        """Loss roles the runs declared (Recorder(..., roles=...)); the current run's win."""
        roles: dict = {}
        for e in sorted(self._entries, key=lambda e: e is self.current):
            roles.update((e.run.meta or {}).get(META_ROLES) or {})
        return roles

    def metric_names(self) -> list[str]:
        """Union of the metrics of all open runs, in first-seen order."""
        seen: dict[str, None] = {}
        for e in self._entries:
            try:
                for n in e.run.scalar_names():
                    seen.setdefault(n, None)
            except Exception as exc:
                self.errorOccurred.emit(str(e.path), f"{e.path}: cannot list metrics ({exc})")
        return list(seen)

    # ------------------------------------------------------------ changes
    def open(self, path) -> RunEntry | None:
        """Open a run file; returns the entry, or None after emitting ``errorOccurred``."""
        path = Path(path)
        existing = self.find(path)
        if existing is not None:
            self.set_current(existing)
            return existing
        key = str(path.resolve())
        try:
            run = GuardedRun(open_run(path))   # the one reader of this file (see run_io)
            run.scalar_names()  # read the scalar table now: a damaged one fails here, not in a paint
        except RunFileError as exc:
            if _is_starting(exc) and (key in self._starting or _recently_written(path)):
                # A live run in its first second: wait for the writer, do not fail for good.
                if key not in self._starting:
                    self._starting[key] = (path, time.monotonic() + START_WAIT_S)
                    self.runStarting.emit(str(path), f"{path}: run is starting, waiting for the writer…")
                self._start_timer.start()
                return None
            self._starting.pop(key, None)
            self.errorOccurred.emit(str(path), str(exc))
            return None
        except Exception as exc:  # anything else a bad file can throw
            self._starting.pop(key, None)
            self.errorOccurred.emit(str(path), f"{path}: cannot read run file ({type(exc).__name__}: {exc})")
            return None
        self._starting.pop(key, None)
        entry = RunEntry(run, self._free_color())
        self._entries.append(entry)
        self.runAdded.emit(entry)
        self.set_current(entry)
        return entry

    def remove(self, entry: RunEntry) -> None:
        if entry not in self._entries:
            return
        self._entries.remove(entry)
        entry.invalidate()
        try:
            entry.run.close()
        finally:
            if self._current is entry:
                self.set_current(self._entries[-1] if self._entries else None)
            self.runRemoved.emit(entry)

    def close_all(self) -> None:
        self.cancel_starting()
        for e in list(self._entries):
            self.remove(e)

    def starting(self) -> list[Path]:
        """Files waiting for their writer to start (see ``runStarting``)."""
        return [p for p, _ in self._starting.values()]

    def cancel_starting(self) -> None:
        self._starting.clear()
        self._start_timer.stop()

    def _retry_starting(self) -> None:
        for key, (path, give_up) in list(self._starting.items()):
            if time.monotonic() > give_up:
                del self._starting[key]
                self.errorOccurred.emit(str(path), f"{path}: the run did not start within {START_WAIT_S:.0f} s")
                continue
            self.open(path)   # success or a real error removes it from _starting
        if not self._starting:
            self._start_timer.stop()

    def set_current(self, entry: RunEntry | None) -> None:
        if entry is self._current:
            return
        self._current = entry
        self.currentChanged.emit(entry)

    def poll(self, entries=None) -> int:
        """Pick up rows the writers added since last time; returns the total of new rows.

        ``entries``: only these runs (the live tail skips runs that did not flush)."""
        total = 0
        for e in list(self._entries if entries is None else entries):
            try:
                n = e.run.refresh()
            except Exception as exc:
                self.errorOccurred.emit(str(e.path), f"{e.path}: refresh failed ({exc})")
                continue
            if n:
                e.invalidate()
                total += n
                self.runUpdated.emit(e, n)
        return total

    def _free_color(self) -> str:
        used = {e.color for e in self._entries}
        for c in PALETTE:
            if c not in used:
                return c
        # More runs than palette colours: the 11th run used to repeat the 1st one's colour.
        # Golden-ratio hues at two lightness levels stay apart from each other.
        for k in range(1, 1000):
            c = extra_color(k)
            if c not in used:
                return c
        return PALETTE[len(self._entries) % len(PALETTE)]


def extra_color(k: int) -> str:
    """The k-th colour after PALETTE (k >= 1): distinct hues, dark enough on white."""
    hue = (0.11 + k * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.62 if k % 2 else 0.85)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def _is_starting(exc) -> bool:
    return any(marker in str(exc) for marker in STARTING_ERRORS)


def _recently_written(path: Path, within_s: float = START_WAIT_S) -> bool:
    """A writer is creating it now (an old half-copied file is not worth waiting for)."""
    try:
        return time.time() - path.stat().st_mtime < within_s
    except OSError:
        return False


def default_metrics(names: list[str], limit: int = DEFAULT_MAX_METRICS, declared: dict | None = None) -> list[str]:
    """What to plot when a run opens: the training and validation loss first (their roles,
    ``declared`` ones first), then other user metrics; the recorder's own series only if
    there is nothing else."""
    user = [n for n in names if not is_sys(n)]
    roles = loss_roles(user, declared)
    losses = [roles[r] for r in ("train", "val") if r in roles]
    rest = [n for n in user if n not in losses]
    chosen = (losses + rest)[:limit]
    if not chosen:
        chosen = [n for n in (SYS_GRAD_NORM, SYS_LR) if n in names][:limit]
    return chosen


class ViewState(QObject):
    """What the plots show. Step ranges are in steps whatever the x axis shows."""

    metricsChanged = Signal(list)
    xModeChanged = Signal(str)
    smoothingChanged = Signal(float)
    logYChanged = Signal(bool)
    stepRangeChanged = Signal(object)      # (first, last) or None = show everything
    highlightChanged = Signal(object)      # (first, last) or None
    heatmapStatChanged = Signal(str)
    selectedLayersChanged = Signal(list)
    findingFocused = Signal(object)        # the Finding

    def __init__(self, parent=None):
        super().__init__(parent)
        self.metrics: list[str] = []
        self.x_mode = "step"
        self.smoothing = 0.6
        self.log_y = False
        self.step_range: tuple[float, float] | None = None
        self.highlight: tuple[float, float] | None = None
        self.heatmap_stat = "grad_norm"
        self.selected_layers: list[str] = []

    def set_metrics(self, names) -> None:
        names = list(dict.fromkeys(names))
        if names != self.metrics:
            self.metrics = names
            self.metricsChanged.emit(list(names))

    def toggle_metric(self, name: str, on: bool) -> None:
        if on and name not in self.metrics:
            self.set_metrics(self.metrics + [name])
        elif not on and name in self.metrics:
            self.set_metrics([m for m in self.metrics if m != name])

    def set_x_mode(self, mode: str) -> None:
        if mode not in X_MODES:
            raise ValueError(f"x axis must be one of {X_MODES}, not {mode!r}")
        if mode != self.x_mode:
            self.x_mode = mode
            self.xModeChanged.emit(mode)

    def cycle_x_mode(self) -> None:
        self.set_x_mode(X_MODES[(X_MODES.index(self.x_mode) + 1) % len(X_MODES)])

    def set_smoothing(self, weight: float) -> None:
        weight = float(weight)
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {weight}")
        if weight != self.smoothing:
            self.smoothing = weight
            self.smoothingChanged.emit(weight)

    def set_log_y(self, on: bool) -> None:
        if bool(on) != self.log_y:
            self.log_y = bool(on)
            self.logYChanged.emit(self.log_y)

    def set_step_range(self, rng) -> None:
        rng = None if rng is None else (float(min(rng)), float(max(rng)))
        if rng != self.step_range:
            self.step_range = rng
            self.stepRangeChanged.emit(rng)

    def reset_view(self) -> None:
        self.step_range = None
        self.stepRangeChanged.emit(None)   # always: the widgets re-enable auto range

    def set_highlight(self, span) -> None:
        if span != self.highlight:
            self.highlight = span
            self.highlightChanged.emit(span)

    def set_heatmap_stat(self, name: str) -> None:
        if name != self.heatmap_stat:
            self.heatmap_stat = name
            self.heatmapStatChanged.emit(name)

    def set_selected_layers(self, layers) -> None:
        layers = list(dict.fromkeys(layers))
        if layers != self.selected_layers:
            self.selected_layers = layers
            self.selectedLayersChanged.emit(layers)

    def focus_finding(self, finding, layer_stats=()) -> None:
        """Jump to a finding: its step span (padded), highlighted; its layers selected."""
        first, last = finding.first_step, finding.last_step
        if first is not None or last is not None:
            first = last if first is None else first
            last = first if last is None else last
            pad = max(5.0, 0.1 * (last - first))
            self.set_highlight((float(first), float(last)))
            self.set_step_range((first - pad, last + pad))
        else:
            self.set_highlight(None)
        for ev in getattr(finding, "evidence", []):
            if ev.series in layer_stats:
                self.set_heatmap_stat(ev.series)
                break
        layers = list(finding.layers) or [ev.layer for ev in finding.evidence if getattr(ev, "layer", None)]
        self.set_selected_layers(layers)
        self.findingFocused.emit(finding)
