"""One curve of a scalar plot and the reads that feed it, with bounded memory.

A curve holds no point array of its series: ``env`` is an :class:`~trainspect.app.lod.Envelope`
(a few thousand buckets, each with its first, last, lowest and highest point) fed with the
new rows as the run grows, and ``detail`` one more for the range in view once the user zooms
in past what ``env`` resolves, read back from the file for that range only and sized to the
plot's width. Memory follows what is shown, not the run's length; a spike is a bucket's
extreme at every zoom level. Reads run on the model's background readers (``build_envelopes``,
``read_rows``); the results are handed to the curve on the GUI thread.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from ...lod import Envelope, gap_exponent, step_weight
from ...vocab import is_lr
from ..plain_text import rich, shown, tip
from .view_line import ViewLine

WHOLE_DRAW_POINTS = 20_000   # up to this many single points are drawn as they are
RAW_ALPHA = 60          # the raw curve stays visible but faint behind the EMA
SHORT_SERIES = 10       # series of at most this many points are drawn raw (an EMA of 3-5 validation
                        # points lagged: it ended at 2.85 where the last value was 2.53), with markers
BUILD_BLOCK_ROWS = 1_000_000   # scalar rows per read while building an envelope (~30 MB at a time)
DETAIL_BUCKETS_PER_PX = 8      # a zoomed-in read keeps at most this many buckets per pixel
NONFINITE_PEN = "#d62728"      # edges of the bands where a series is NaN or Inf (a line has a gap there)
# Hatched, not filled: a red tint under the finding highlight's yellow read as a third, orange
# band (trial14 M4); red hatching on yellow stays both "NaN" and "the finding's span".
NONFINITE_HATCH = (214, 39, 40, 150)
MAX_NONFINITE_BANDS = 64
MARKED_DASHED_POINTS = 300     # a validation loss on the combined loss plot: markers up to this many points


def nonfinite_brush() -> QBrush:
    """The brush of the bands where a series is NaN/Inf: red diagonal hatching."""
    brush = QBrush(QColor(*NONFINITE_HATCH), Qt.BDiagPattern)
    return brush


def build_envelopes(run, weights: dict, stop: int) -> dict:
    """Envelopes of the metrics in ``weights`` (name -> smoothing) over scalar rows [0, stop),
    read a block at a time (a background reader's job). A resumed run is read in one go: rows a
    later session superseded are dropped across the whole table."""
    envs = {name: Envelope(w) for name, w in weights.items()}
    with run.locked() as r:
        resumed = len(r.segments()) > 1
    blocks = [(0, stop)] if resumed else [(a, min(stop, a + BUILD_BLOCK_ROWS)) for a in range(0, stop, BUILD_BLOCK_ROWS)]
    for a, b in blocks:
        with run.locked() as r:    # released between blocks: the live tail gets its turn
            got = r.scalar_rows(list(envs), a, b, latest=True)
        for name, (rows, s) in got.items():
            envs[name].extend(rows, s.steps, s.wall, s.values)
    return envs


class Curve:
    """One (metric, run) pair: raw and smoothed plot items and the bounded data behind them."""

    def __init__(self, plot: pg.PlotItem, entry, metric: str, weight: float, dashed: bool = False):
        self.entry = entry
        self.metric = metric
        # The validation loss on the combined loss plot: dashed, with markers at its points
        # (the training loss beside it is solid), as in the report's "Losses".
        self.dashed = dashed
        color = QColor(entry.color)
        self.raw = ViewLine(pen=self._pen(self._faint()), name=rich(entry.name))   # a legend draws its names as HTML
        # 1-px pens: Qt's raster engine draws wider lines 2-3x slower (measured: pan of a
        # 10 M-point curve 7 ms at width 1, 26 ms at width 2).
        self.smooth = ViewLine(pen=self._pen(color))
        for item in (self.raw, self.smooth):
            item.run_key, item.run_label = entry.key, entry.name   # a run off the scale is named (flat_view)
            plot.addItem(item)
            # After addItem (which applies the plot's own settings). Peak LOD: min and max
            # per pixel column -- never sampling, so spikes survive.
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
        self.plot = plot
        self.nonfinite_bands: list[pg.LinearRegionItem] = []   # shown where the series is NaN/Inf
        self.weight = weight          # the view's smoothing: the per-point weight of the densest curve
        self.schedule = is_lr(metric)   # a learning rate: drawn as set, never smoothed (it only lagged)
        # Smoothing by steps, not points (lod.step_weight): a curve whose points are 2**gap_exp
        # times further apart than the densest curve's in the panel (gap_ref, set by the panel)
        # gets the per-point weight weight ** 2**gap_exp. A short series is drawn raw.
        self.gap = None               # mean step gap of the series as last seen (None: unknown)
        self.seen = (0, 0)            # (points, finite values) last seen, a build thrown away included
        self.gap_ref = None
        self.gap_exp = None
        self.env = Envelope(weight)
        self.rows_fed = 0             # scalar-table rows ``env`` has seen
        self.rebuild = True           # ``env`` must be built from the file (new curve, new smoothing)
        self.detail = None            # (x0, x1, Envelope) read for a zoomed-in view
        self.detail_wanted = None     # (x0, x1, n_px) the view needs and neither envelope has
        self.axis, self.x_offset = "s", 0.0   # x = step, or wall time minus an origin
        self.counts = (0, 0, 0)       # (points, finite values, finite values <= 0)
        self.x_span = None            # (min, max) of the finite x, None if there are none
        self._view = (None, None, 1000)

    # ------------------------------------------------------------ data in
    @property
    def n_points(self) -> int:
        return self.env.points

    @property
    def last_step(self):
        return self.env.last_step

    def step_weight(self) -> float:
        """The per-point weight that smooths this curve over as many steps as the view's
        weight smooths the densest curve (exactly the view's weight for that one); 0 for a
        learning rate."""
        return 0.0 if self.schedule else step_weight(self.weight, self.gap_exp)

    def wanted_weight(self, n_finite: int | None = None) -> float:
        n = self.env.finite if n_finite is None else n_finite
        return 0.0 if n <= SHORT_SERIES else self.step_weight()   # smoothing a handful only hides the last

    def build_weight(self) -> float:
        """The smoothing a read of the whole series should use (what the last data said)."""
        return self.wanted_weight(self.seen[1]) if self.seen[0] else self.step_weight()

    def _note(self, env: Envelope) -> None:
        """Learn the series' step gap and size from ``env`` (quantised against ``gap_ref``)."""
        self.seen = (env.points, env.finite)
        gap = env.step_gap()
        if gap is not None:
            self.gap = gap
        self.gap_exp = gap_exponent(self.gap, self.gap_ref, self.gap_exp)

    def set_gap_ref(self, ref) -> bool:
        """The densest curve's step gap in the panel; True when this curve's smoothing changes
        (its envelope then needs a rebuild: ``_after_data`` does it or asks for a read)."""
        before = self.wanted_weight()
        self.gap_ref = ref
        self.gap_exp = gap_exponent(self.gap, ref, self.gap_exp)
        return self.wanted_weight() != before

    def set_axis(self, axis: str, offset: float) -> None:
        self.axis, self.x_offset = axis, float(offset)
        self.detail = None

    def adopt(self, old: "Curve") -> None:
        """Take over the data of the curve this one replaces (a plot rebuilt: no re-read)."""
        self.env, self.rows_fed, self.rebuild = old.env, old.rows_fed, old.rebuild
        self.weight = old.weight
        self.gap, self.seen, self.gap_ref, self.gap_exp = old.gap, old.seen, old.gap_ref, old.gap_exp
        if not self.rebuild:
            self._after_data()

    def take_built(self, env: Envelope, stop: int) -> None:
        """A whole envelope was read (rows [0, stop)) with the smoothing asked for then."""
        if not self.rebuild:
            return
        self._note(env)             # its gap may change the smoothing it should have been read with
        if env.weight != self.wanted_weight(env.finite) and not env.exact:
            return                  # the smoothing changed meanwhile: the next read builds it
        self.env, self.rows_fed, self.rebuild, self.detail = env, stop, False, None
        self._after_data()

    def take(self, start: int, stop: int, got) -> None:
        """New rows [start, stop) were read: ``got`` is (row numbers, Series) of this metric, or None."""
        if self.rebuild or start > self.rows_fed:
            return
        if got is not None:
            rows, series = got
            keep = rows >= self.rows_fed
            args = (rows[keep], series.steps[keep], series.wall[keep], series.values[keep])
            env = self.env
            if env.ordered and env.m and len(args[1]) and args[1][0] < env.last_step:
                # Steps went back: a resumed run's new session supersedes points already held
                # (read the whole series again, once; a metric logged out of order stays so).
                self.rebuild = True
                env.ordered = False
                return
            env.extend(*args)
            d = self.detail
            if d is not None and d[2].rows_end == self.rows_fed:
                d[2].extend(*args)   # zoomed in at the newest rows: the detail grows too
                d[2].rows_end = stop
        self.rows_fed = stop
        self._after_data()

    def set_weight(self, weight: float) -> None:
        """New smoothing: rebuilt here when every point is held, else ``rebuild`` asks for a read."""
        self.weight = weight
        self._rebuild_if_needed()

    def _rebuild_if_needed(self) -> None:
        want = self.wanted_weight()
        if want == self.env.weight or self.rebuild:
            return
        self.detail = None
        if self.env.exact:          # every point is held: rebuild here
            c, m = self.env.cols, self.env.m
            env = Envelope(want)
            env.extend(c["r0"][:m], c["sf"][:m], c["wf"][:m], c["yf"][:m])
            self.env = env
        else:
            self.rebuild = True

    def _after_data(self) -> None:
        if not self.rebuild:
            self._note(self.env)
        self._rebuild_if_needed()
        env = self.env
        self.counts = (env.points, env.finite, env.nonpositive)
        span = env.x_span(self.axis)
        self.x_span = None if span is None else (span[0] - self.x_offset, span[1] - self.x_offset)
        # A single point draws no line, a handful barely one: mark them (a metric logged once,
        # a validation loss logged every few hundred steps).
        marked = 0 < env.finite <= (MARKED_DASHED_POINTS if self.dashed else SHORT_SERIES)
        self.raw.setSymbol("o" if marked else None)
        if marked:
            self.raw.setSymbolSize(5 if self.dashed else 6)
            self.raw.setSymbolBrush(pg.mkBrush(self.entry.color))
            self.raw.setSymbolPen(None)
        smoothing = env.weight > 0
        self.smooth.setVisible(smoothing)
        if not smoothing:
            self.smooth.setData([], [])
        self.raw.setPen(self._pen(self._faint() if smoothing else QColor(self.entry.color)))
        self.show_view(*self._view)

    # ------------------------------------------------------------ data out
    def show_view(self, x0, x1, n_px: int) -> None:
        """Give the plot items what the x range [x0, x1] needs (None = all data) on ``n_px``
        pixels: the overview's buckets, or the detail read for this range; when neither
        resolves the range, ``detail_wanted`` says which read would (see ScalarPlotPanel)."""
        self._view = (x0, x1, n_px)
        env = self.env
        ex0 = None if x0 is None else float(x0) + self.x_offset
        ex1 = None if x1 is None else float(x1) + self.x_offset
        b0, b1 = env.bucket_range(ex0, ex1, self.axis)
        source, self.detail_wanted = env, None
        enough = max(2, n_px // 2)    # buckets in view: at least one per two pixel columns
        if not env.exact and x0 is not None and b1 - b0 < enough:
            d = self.detail
            if d is not None and d[0] <= ex0 and ex1 <= d[1] and d[2].weight == env.weight:
                source = d[2]         # the last zoom's read: shown while a finer one comes
                b0, b1 = source.bucket_range(ex0, ex1, self.axis)
            if source is env or not (source.exact or b1 - b0 >= enough):
                self.detail_wanted = (ex0, ex1, n_px)
        self._draw(source, b0, b1)

    def _draw(self, env: Envelope, b0: int, b1: int) -> None:
        # Up to WHOLE_DRAW_POINTS single points are drawn as they are (a curve narrower than a
        # pixel stays visible); more, or buckets of several points, are merged to two buckets
        # per pixel column: a redraw never touches more than a few points per pixel.
        whole = env.exact and b1 - b0 <= WHOLE_DRAW_POINTS
        most = None if whole else 2 * self._view[2]
        x, y = env.draw(b0, b1, self.axis, max_buckets=most)
        auto = len(x) > WHOLE_DRAW_POINTS
        for item in (self.raw, self.smooth):
            item.setDownsampling(ds=1, auto=auto, method="peak")
        self.raw.setData(x - self.x_offset, y)
        if self.smooth.isVisible():
            xs, ys = env.draw(b0, b1, self.axis, smoothed=True, max_buckets=most)
            self.smooth.setData(xs - self.x_offset, ys)
        self._draw_nonfinite(env.nonfinite(b0, b1, self.axis, MAX_NONFINITE_BANDS))

    def _draw_nonfinite(self, spans) -> None:
        """A band from the first to the last NaN/Inf of each run of them (a single one: its edge
        line), so a diverged step is seen on the plot and not only as a gap in the line."""
        bands = self.nonfinite_bands
        while len(bands) < len(spans):
            band = pg.LinearRegionItem(movable=False, brush=nonfinite_brush(),
                                       pen=pg.mkPen(NONFINITE_PEN, width=1))
            band.setZValue(-5)
            self.plot.addItem(band, ignoreBounds=True)
            bands.append(band)
        unit = "steps" if self.axis == "s" else "wall time"
        for band, (x0, x1) in zip(bands, spans):
            band.setRegion((x0 - self.x_offset, x1 - self.x_offset))
            where = f"step {x0:.0f}" if x0 == x1 and self.axis == "s" else (
                f"steps {x0:.0f}-{x1:.0f}" if self.axis == "s" else unit)
            band.setToolTip(tip(f"{shown(self.metric)} of {shown(self.entry.name)}: NaN or Inf at {where}"))
            band.setVisible(True)
        for band in bands[len(spans):]:
            band.setVisible(False)

    def remove(self) -> None:
        """Take this curve's items off its plot (its run was closed)."""
        for item in (self.raw, self.smooth, *self.nonfinite_bands):
            self.plot.removeItem(item)
        self.nonfinite_bands = []

    def detail_request(self):
        """``(first row, stop row, EMA state, x0, x1, capacity)`` of the read ``detail_wanted``
        needs: the rows of the buckets around the view, one view width more each side (a small
        pan reads nothing), at most DETAIL_BUCKETS_PER_PX buckets per pixel."""
        if self.detail_wanted is None or self.rebuild:
            return None
        ex0, ex1, n_px = self.detail_wanted
        w = max(ex1 - ex0, 1e-9)
        env = self.env
        b0, b1 = env.bucket_range(ex0 - w, ex1 + w, self.axis)
        if b1 <= b0:
            return None
        r0, r1 = env.rows_of(b0, b1)
        if b1 == env.m:
            r1 = self.rows_fed        # to the newest row: live rows can extend it
        x0 = float(env.cols[self.axis + "f"][b0]) if b0 > 0 else -np.inf
        x1 = float(env.cols[self.axis + "f"][b1]) if b1 < env.m else np.inf
        return r0, r1, env.state_at(b0), x0, x1, DETAIL_BUCKETS_PER_PX * max(100, n_px), env.weight

    def take_detail(self, request, got) -> None:
        r0, r1, state, x0, x1, capacity, weight = request
        if weight != self.env.weight or self.rebuild:
            return                  # smoothing changed meanwhile: that read is no use
        d = Envelope(weight, capacity=capacity, ema_state=state)
        if got is not None:
            rows, series = got
            d.extend(rows, series.steps, series.wall, series.values)
        d.rows_end = r1
        if x1 == np.inf and r1 < self.rows_fed:   # rows arrived meanwhile: it ends where it ends
            span = d.x_span(self.axis)
            x1 = span[1] if span is not None else x0
        self.detail = (x0, x1, d)
        self.show_view(*self._view)

    def _pen(self, color):
        return pg.mkPen(color, width=1, style=Qt.DashLine if self.dashed else Qt.SolidLine)

    def _faint(self) -> QColor:
        c = QColor(self.entry.color)
        c.setAlpha(RAW_ALPHA)
        return c

    def step_x_pairs(self):
        """(steps, x) of the held points: maps steps to this run's x axis."""
        c, m = self.env.cols, self.env.m
        return c["sf"][:m], c[self.axis + "f"][:m] - self.x_offset

    def value_at(self, x: float):
        """(step, raw value, smoothed value) of the held point nearest to ``x`` (every point of
        the range in view once zoomed in); None if empty."""
        ex = float(x) + self.x_offset
        d = self.detail
        env = d[2] if d is not None and d[0] <= ex <= d[1] and d[2].m else self.env
        return env.nearest(ex, self.axis)
