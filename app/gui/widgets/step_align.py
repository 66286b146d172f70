"""One step, one x across the Overview: the scalar plots' and the layer heatmap's plot areas
get the same left and right edges in the window (UX review trial14 M2).

Their axes differ (the heatmap's layer names are wider than the plots' y ticks, and its colour
bar sits on the right), so step 40 was at x 462 in the plots and 521 in the heatmap. The
narrower side gets a margin on its canvas: each pass measures where each plot area would be
without the margins it already has, and lines both up on the innermost edges.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, QTimer


def _layout_now(view_box) -> None:
    """Lay out the canvas the view box is in (a margin set a moment ago takes effect lazily)."""
    item = view_box
    while item is not None:
        layout = getattr(item, "layout", None)
        if callable(getattr(layout, "activate", None)):
            layout.activate()
        item = item.parentItem()


def area_edges(view_box, window) -> tuple[float, float] | None:
    """Left and right x of ``view_box``'s plot area in ``window``'s coordinates (None: not shown)."""
    scene = view_box.scene()
    if scene is None or not scene.views():
        return None
    canvas = scene.views()[0]
    if not canvas.isVisible():
        return None
    rect = view_box.sceneBoundingRect()
    to_view = canvas.viewportTransform()
    left = to_view.map(rect.topLeft()).x()
    right = to_view.map(rect.topRight()).x()
    origin = canvas.viewport().mapTo(window, QPointF(0.0, 0.0))
    return origin.x() + left, origin.x() + right


class CanvasMargins:
    """Extra left/right margins of one pyqtgraph canvas's top layout, on top of its own."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.layout = canvas.ci
        self.base = self.layout.layout.getContentsMargins()   # (left, top, right, bottom)
        self.extra = (0.0, 0.0)

    def room(self) -> float:
        """How much wider the canvas is than its plots need without our margins: more margin
        than this and the layout overflows the canvas (a long plot title sets a least width),
        cutting the plots' right end off instead of lining them up."""
        least = self.layout.layout.minimumWidth() - sum(self.extra)
        return self.canvas.viewport().width() - least

    def overflows(self) -> bool:
        return self.room() < sum(self.extra) - 0.5

    def set(self, left: float, right: float) -> None:
        left, right = max(0.0, round(left)), max(0.0, round(right))
        if (left, right) == self.extra:
            return        # an unchanged margin: no relayout, so no resize to react to
        self.extra = (left, right)
        l, t, r, b = self.base
        self.layout.setContentsMargins(l + left, t, r + right, b)


class StepColumns(QObject):
    """Keeps ``scalars``' and ``heatmap``'s plot areas over the same window x range while both
    are shown (``*.step_view()`` gives each one's ViewBox, or None)."""

    def __init__(self, window, scalars, heatmap):
        super().__init__(window)
        self.window = window
        self.panels = (scalars, heatmap)
        self.margins = [CanvasMargins(p.canvas) for p in self.panels]
        self._watched: list = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)      # after the resize or relayout that asked for it
        self._timer.timeout.connect(self.align)

    def schedule(self, *_) -> None:
        self._timer.start()

    def _watch(self, boxes) -> None:
        """Re-align whenever one of the plot areas changes size (window, splitter, scroll bar,
        wider layer labels, another top plot)."""
        for vb in boxes:
            if vb is not None and not any(vb is w for w in self._watched):
                vb.sigResized.connect(self.schedule)
                self._watched.append(vb)

    def align(self) -> None:
        boxes = [p.step_view() for p in self.panels]
        self._watch(boxes)
        if any(vb is None for vb in boxes):
            for m in self.margins:          # one side alone: nothing to line up with
                m.set(0, 0)
            return
        for vb in boxes:
            _layout_now(vb)
        if any(m.overflows() for m in self.margins):
            # a margin from a wider window: its positions say nothing, measure again without
            # (once: a canvas too narrow for its plots even without margins is left as it is)
            had = any(m.extra != (0.0, 0.0) for m in self.margins)
            for m in self.margins:
                m.set(0, 0)
            if had:
                self.schedule()
            return
        edges = [area_edges(vb, self.window) for vb in boxes]
        if any(e is None for e in edges):
            for m in self.margins:
                m.set(0, 0)
            return
        # where each area would be without our margins
        natural = [(left - m.extra[0], right + m.extra[1]) for (left, right), m in zip(edges, self.margins)]
        target_left = max(n[0] for n in natural)
        target_right = min(n[1] for n in natural)
        if target_right - target_left < 50:     # too narrow to line up: leave them be
            for m in self.margins:
                m.set(0, 0)
            return
        wanted = [(target_left - left, right - target_right) for left, right in natural]
        if any(sum(w) > m.room() for w, m in zip(wanted, self.margins)):
            for m in self.margins:      # a plot would overflow its canvas: as they are
                m.set(0, 0)
            return
        for w, m in zip(wanted, self.margins):
            m.set(*w)
