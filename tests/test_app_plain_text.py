"""Names from a run file are text: the app shows them as typed, never as Qt rich text.

A run named ``<img src="/dev/zero">`` made the app read /dev/zero until it aborted just by
opening the run (a label, a tooltip and a legend all took the name as HTML). Here the image is
``/dev/null`` (harmless if the bug came back: the check is that no image is in the text at all).
"""
import math

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
torch = pytest.importorskip("torch")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import Qt as GuiQt  # noqa: E402  (Qt::mightBeRichText lives in QtGui)
from PySide6.QtGui import QTextDocument  # noqa: E402
from PySide6.QtWidgets import QGraphicsTextItem, QGraphicsView, QLabel, QTextEdit  # noqa: E402

from tests.gui_helpers import WAIT_S, open_runs, show_panel  # noqa: E402

IMG = '<img src="/dev/null">'
SPOOF = "<h1 style=color:red>SPOOF</h1>"
RUN_NAME = SPOOF + IMG
METRIC = "train/" + IMG + SPOOF
LAYER = IMG                                   # a module name holds no "."
TRICKY = "loss\u202efdp.exe\u200b"            # right-to-left override and a zero-width space


def record(path, name: str, metric: str, layer: str):
    from torch import nn
    from trainspect.recorder import Recorder

    model = nn.Sequential()
    model.add_module(layer, nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(path, name=name, overwrite=True, stats_every=1, hist_every=5, snapshot_every=5) as rec:
        rec.watch(model, opt)
        for step in range(12):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({metric: math.nan if step == 6 else loss.item()}, step=step)   # a NaN band
    return path


def document(text: str, fmt) -> QTextDocument | None:
    """The document Qt lays ``text`` out as, or None where Qt shows it as plain text."""
    if fmt == Qt.PlainText or fmt == Qt.AutoText and not GuiQt.mightBeRichText(text):
        return None
    doc = QTextDocument()
    doc.setHtml(text)
    return doc


def rendered_markup(doc: QTextDocument) -> list[str]:
    """Images and level-1 headings in ``doc`` (the app draws neither: any is a name's markup)."""
    found = []
    block = doc.begin()
    while block.isValid():
        if block.blockFormat().headingLevel() == 1:
            found.append(f"heading {block.text()!r}")
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isImageFormat():
                found.append(f"image in {block.text()!r}")
            it += 1
        block = block.next()
    return found


def shown_text(text: str, fmt=Qt.AutoText) -> tuple[str, list[str]]:
    """(what the user reads, markup rendered from it) of a label's or a tooltip's ``text``."""
    doc = document(text, fmt)
    return (text, []) if doc is None else (doc.toPlainText(), rendered_markup(doc))


def all_texts(window, qtbot):
    """(where, text, format) of every label, tooltip, text browser and plot text in the window."""
    out = [(f"label {label.objectName() or type(label.parent()).__name__}", label.text(), label.textFormat())
           for label in window.findChildren(QLabel)]
    out += [(f"tooltip {w.objectName() or type(w).__name__}", w.toolTip(), Qt.AutoText) for w in window.findChildren(QLabel)]
    out += [("text browser", b.toHtml(), Qt.RichText) for b in window.findChildren(QTextEdit)]
    lst = window.run_list.list
    out += [("run list tooltip", lst.item(i).toolTip(), Qt.AutoText) for i in range(lst.count())]
    tree = window.advisor.tree
    for i in range(tree.topLevelItemCount()):
        out += [("finding tooltip", tree.topLevelItem(i).toolTip(1), Qt.AutoText)]
    out += [("advisor status tooltip", window.advisor.status.toolTip(), Qt.AutoText),
            ("run state tooltip", window.run_state.toolTip(), Qt.AutoText)]
    model = window.metrics.model
    for g in range(model.rowCount()):
        group = model.index(g, 0)
        for r in range(model.rowCount(group)):
            out.append(("metric tooltip", model.data(model.index(r, 0, group), Qt.ToolTipRole), Qt.AutoText))
    for view in window.findChildren(QGraphicsView):
        for item in view.scene().items():
            if isinstance(item, QGraphicsTextItem):
                out.append(("plot text", item.toHtml(), Qt.RichText))
            if item.toolTip():
                out.append(("plot item tooltip", item.toolTip(), Qt.AutoText))
    return out


def test_names_from_the_file_show_as_typed_never_as_rich_text(window, qtbot, tmp_path):
    path = record(tmp_path / "hostile.h5", RUN_NAME, METRIC, LAYER)
    entry, = open_runs(window, [path])
    window.advisor.wait()
    assert METRIC in window.view.metrics
    window.heatmap.say_reading("the layer statistics", entry)     # the loading line names the run
    loading = window.heatmap.message
    assert shown_text(loading.text(), loading.textFormat()) == (f"reading the layer statistics of {RUN_NAME}…", [])
    show_panel(window, qtbot, window.heatmap)
    window.heatmap.click_cell(5.0, 0.0)                            # the layer's series, with its legend
    qtbot.waitUntil(lambda: not window.heatmap.reading() and bool(window.heatmap.layer_curves),
                    timeout=int(WAIT_S * 1000))
    curve = window.scalars.curves[(METRIC, entry.key)]
    qtbot.waitUntil(lambda: any(b.isVisible() for b in curve.nonfinite_bands), timeout=int(WAIT_S * 1000))
    window.grab()                                                 # everything laid out and painted

    texts = all_texts(window, qtbot)
    rendered = [(where, markup) for where, text, fmt in texts for markup in shown_text(text, fmt)[1]]
    assert rendered == []
    read = [(where, shown_text(text, fmt)[0]) for where, text, fmt in texts]
    for name, places in ((RUN_NAME, ("run list tooltip", "advisor status tooltip", "plot item tooltip")),
                         (METRIC, ("metric tooltip", "plot text", "plot item tooltip")),
                         (LAYER, ("label HeatmapPanel",))):
        for place in places:
            assert any(name in text for where, text in read if where == place), (name, place)
    assert RUN_NAME in window.windowTitle()
    assert RUN_NAME in window.run_list.list.item(0).text()
    legend = window.heatmap.legend
    assert LAYER in shown_text(legend.text(), legend.textFormat())[0]


def test_invisible_and_reordering_characters_are_shown(window, qtbot, tmp_path):
    from trainspect.app.gui.plain_text import shown

    assert shown(TRICKY) == "loss⟨U+202E⟩fdp.exe⟨U+200B⟩"
    assert shown("line\nbreak\u2066x\ufeff") == "line⟨U+000A⟩break⟨U+2066⟩x⟨U+FEFF⟩"
    assert shown("train/loss é 中 ü") == "train/loss é 中 ü"
    path = record(tmp_path / "tricky.h5", TRICKY, "train/" + TRICKY, "fc")
    open_runs(window, [path])
    window.advisor.wait()
    visible = shown(TRICKY)
    assert window.run_list.list.item(0).text().startswith(visible)
    assert visible in window.windowTitle()
    assert visible in window.advisor.status.text()
    model = window.metrics.model
    train = next(model.index(g, 0) for g in range(model.rowCount()) if model.data(model.index(g, 0)) == "train/")
    assert model.data(model.index(0, 0, train)) == "train/" + visible
    assert model.data(model.index(0, 0, train), Qt.UserRole) == "train/" + TRICKY   # the name itself is kept
    title = window.scalars.plots["train/" + TRICKY].titleLabel.text
    assert visible in title and "\u202e" not in title
