"""The finding's highlight over a NaN band (UX review trial14 M4): the yellow highlight over the
red-tinted NaN band rendered one orange block, a third colour meaning neither. The NaN band is
red hatching now, so where both are, the highlight's yellow and the NaN's red are both seen."""
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPointF, Qt  # noqa: E402

from tests.gui_helpers import WAIT_S, open_runs, shoot  # noqa: E402

WAIT_MS = int(WAIT_S * 1000)


def nan_tail_run(path, n=300, first_nan=150):
    from trainspect.recorder import Recorder

    values = np.linspace(2.0, 0.5, n)
    values[first_nan:] = np.nan
    with Recorder(path) as rec:
        rec.log_many({"train/loss": values}, steps=np.arange(n))
    return path


def strip_colours(window, plot, step: float) -> Counter:
    """The colours of a 5 px wide strip of ``plot``'s plot area at ``step``, counted."""
    canvas = window.scalars.canvas
    image = canvas.grab().toImage()
    vb = plot.getViewBox()
    rect = canvas.mapFromScene(vb.sceneBoundingRect()).boundingRect()
    x = canvas.mapFromScene(vb.mapViewToScene(QPointF(step, 0))).x()
    got = Counter()
    ratio = image.devicePixelRatio()
    for dx in range(-2, 3):
        for y in range(rect.top() + 3, rect.bottom() - 3):
            c = image.pixelColor(int((x + dx) * ratio), int(y * ratio))
            got[(c.red(), c.green(), c.blue())] += 1
    return got


def reddish(colour) -> bool:
    r, g, b = colour
    return r > 150 and g < 140 and b < 140


def test_the_finding_span_and_the_nan_band_stay_apart_where_they_overlap(window, qtbot, tmp_path):
    (entry,) = open_runs(window, [nan_tail_run(tmp_path / "nan.h5")])
    window.view.set_metrics(["train/loss"])
    qtbot.waitUntil(lambda: ("train/loss", entry.key) in window.scalars.curves, timeout=WAIT_MS)
    curve = window.scalars.curves[("train/loss", entry.key)]
    qtbot.waitUntil(lambda: any(b.isVisible() for b in curve.nonfinite_bands), timeout=WAIT_MS)
    band = next(b for b in curve.nonfinite_bands if b.isVisible())
    assert band.brush.style() not in (Qt.SolidPattern, Qt.NoBrush)   # hatched: what is under it shows
    window.view.set_highlight((100.0, 220.0))
    plot = window.scalars.plots["train/loss"]
    qtbot.wait(200)
    shoot(window, "ux4_nan_highlight.png")
    highlight_only = strip_colours(window, plot, 125)    # the span, no NaN
    both = strip_colours(window, plot, 185)              # the span over the NaN band
    nan_only = strip_colours(window, plot, 260)          # the NaN band alone
    yellow = highlight_only.most_common(1)[0][0]
    # where both are, the span keeps its own yellow (the old fill mixed them into orange) ...
    assert both.most_common(1)[0][0] == yellow, (both.most_common(3), yellow)
    # ... and the NaN's red is still there, as it is outside the span
    assert sum(n for c, n in both.items() if reddish(c)) >= 0.05 * sum(both.values())
    assert sum(n for c, n in nan_only.items() if reddish(c)) >= 0.05 * sum(nan_only.values())
    assert not any(reddish(c) for c in highlight_only if highlight_only[c] > 2)
    # the span's ends are drawn: a non-empty pen
    region = window.scalars._regions["train/loss"]
    assert region.lines[0].pen.style() != Qt.NoPen and region.lines[0].pen.widthF() >= 1.5
