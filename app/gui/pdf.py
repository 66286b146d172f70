"""The report as a PDF, drawn by Qt (QPdfWriter + QPainter): no browser needed.

Same content as the HTML: text blocks are Qt rich text (QTextDocument, every value escaped),
plots are the same SVG drawn as vectors by QSvgRenderer. A tiny flow layout puts blocks on
A4 pages one after the other and numbers the pages. A table taller than the room left is cut
between two rows, not moved whole to the next page: a page break before each run and whole
tables moved on made two 300-step runs 15 pages, page 1 the title alone, several 70 % blank.
"""
from __future__ import annotations

import os
import sys
from ..report.content import Report
from ..report.html import (breakable, comparison_cell, comparison_note, finding_line, glance, not_checked_html,
                           shown_findings)
from ..present import e, rich_html

PAGE_DPI = 96            # layout units = CSS pixels; the PDF itself is vector
MARGIN = 42
FOOTER = 22
BLOCK_GAP = 8
MIN_PART = 120           # a text block is cut across pages only if this much of it fits on this one
TABLE_FONT_PX = (10, 9, 8)   # the comparison table's font, smaller while it is wider than the page
ZWSP = "\u200b"         # a place Qt may wrap a table cell (after _ / ,), drawn as nothing

_app = None


def qt_available() -> bool:
    """Whether PDF output can work here (checked before any report work starts)."""
    try:
        import PySide6.QtSvg  # noqa: F401
    except ImportError:
        return False
    return True


def ensure_gui_app():
    """A Qt application for fonts and painting; offscreen when there is no display."""
    global _app
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        # A QApplication, not a QGuiApplication: the process may open windows later (the app,
        # pytest-qt), and widgets abort under a plain QGuiApplication.
        _app = app = QApplication([])
    return app


# ------------------------------------------------------------------ blocks
class Text:
    def __init__(self, html: str, keep_next: bool = False, words: bool = False):
        self.html = html
        self.keep_next = keep_next     # a heading is never left alone at the foot of a page
        self.words = words             # wrapped between words only (a table: "no_progres | s" otherwise)


class Svg:
    def __init__(self, svg: str, caption: str = ""):
        self.svg = svg
        self.caption = caption


def _kv(rows) -> str:
    cells = "".join(f'<tr><td bgcolor="#f3f3f3"><font color="#555">{e(k)}</font></td><td>{e(v)}</td></tr>'
                    for k, v in rows)
    return f'<table border="1" cellspacing="0" cellpadding="3" style="border-color:#ccc">{cells}</table>'


def comparison_table(c) -> str:
    head = "".join(f"<th>{breakable(h, ZWSP)}</th>" for h in c.header)
    rows = "".join(
        f"<tr><td>{breakable(label, ZWSP)}</td>" + "".join(
            f'<td{" bgcolor=#fff3cd" if differs else ""}>{comparison_cell(c, i, j, x, ZWSP)}</td>'
            for j, x in enumerate(cells)) + "</tr>"
        for i, (label, cells, differs) in enumerate(c.rows))
    return f'<table border="1" cellspacing="0" cellpadding="2"><tr>{head}</tr>{rows}</table>'


def report_blocks(report: Report) -> list:
    blocks = [Text(f"<h1>{e(report.title)}</h1><p><font color='#666'>written by trainspect on {e(report.created)}</font></p>")]
    c = report.comparison
    if c is not None:
        blocks.append(Text(f"<h2>Comparison</h2><p><font color='#666'>{e(comparison_note(c))}</font></p>"
                           + comparison_table(c), words=True))
        if c.shared:
            blocks.append(Text("<h3>Settings all runs share</h3>" + _kv(c.shared)))
        if c.not_checked:
            blocks.append(Text(not_checked_html(c, "in any run")))
        blocks.extend(Svg(fig.svg, fig.caption) for fig in c.figures)
    for s in report.runs:     # summary, findings at a glance, key plots; then config and findings in full
        # a brief section's summary and its loss plot on one page
        blocks.append(Text(f"<h2>{e(s.name)}</h2>" + _kv(s.summary), keep_next=s.brief and bool(s.figures)))
        lines = glance(s)
        if lines:
            blocks.append(Text("<h3>Findings at a glance</h3>" + "".join(
                f'<p><span style="background-color:{color};color:#fff"><b>&nbsp;{e(sev)}&nbsp;</b></span> {e(text)}</p>'
                for _, sev, color, text in lines)))
        if s.figures:     # a brief section's one plot, the losses, needs no heading
            if not s.brief:
                blocks.append(Text("<h2>Key plots</h2>", keep_next=True))
            blocks.extend(Svg(fig.svg, fig.caption) for fig in s.figures)
        if s.config and not s.brief:     # a brief section's config is the comparison's (shared, or a column)
            blocks.append(Text("<h3>Config</h3>" + _kv(s.config)))
        head = "h3" if s.brief else "h2"
        blocks.append(Text(f"<{head}>Advisor findings ({len(s.findings)})</{head}>"
                           + ("" if s.findings else "<p><font color='#2e7d32'><b>No problems found.</b></font></p>"),
                           keep_next=bool(s.findings)))
        for j, f, earlier, full in shown_findings(s):    # each fix listed once
            if full:
                blocks.append(Text(rich_html(f, earlier), keep_next=True))
                blocks.extend(Svg(fig.svg, fig.caption) for fig in s.finding_figures.get(j, []))
            else:
                sev, color, text = finding_line(f)
                blocks.append(Text(f'<p><span style="background-color:{color};color:#fff"><b>&nbsp;{e(sev)}&nbsp;</b>'
                                   f"</span> {e(text)}</p>"))
        if s.not_checked or s.read_from_logs:
            blocks.append(Text(not_checked_html(s)))
    return blocks


# ------------------------------------------------------------------ layout
class _Pager:
    def __init__(self, writer, painter, footer_text: str):
        self.writer, self.painter = writer, painter
        self.footer_text = footer_text
        self.width = writer.width() - 2 * MARGIN
        self.bottom = writer.height() - MARGIN - FOOTER
        self.y = MARGIN
        self.page = 1

    def new_page(self) -> None:
        self._footer()
        self.writer.newPage()
        self.page += 1
        self.y = MARGIN

    def room(self) -> float:
        return self.bottom - self.y

    def half_full(self) -> bool:
        """Whether a group kept together may go on to the next page: a page less full than
        this would hold one small block (the end of a table) above a blank half."""
        return self.y - MARGIN >= (self.bottom - MARGIN) / 2

    def _footer(self) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFont

        p = self.painter
        p.save()
        f = QFont("DejaVu Sans")
        f.setPixelSize(10)
        p.setFont(f)
        p.setPen(QColor("#777"))
        rect = QRectF(MARGIN, self.bottom + 6, self.width, FOOTER)
        p.drawText(rect, Qt.AlignLeft | Qt.AlignVCenter, self.footer_text)
        p.drawText(rect, Qt.AlignRight | Qt.AlignVCenter, f"page {self.page}")
        p.restore()

    def finish(self) -> None:
        self._footer()


def _text_doc(html: str, width: float, words: bool = False):
    """``words``: wrap between words only (and at the zero-width spaces), with the table's font
    made smaller while the table is wider than ``width``."""
    from PySide6.QtGui import QFont, QTextDocument, QTextOption

    for px in TABLE_FONT_PX if words else (11,):
        doc = QTextDocument()
        font = QFont("DejaVu Sans")
        font.setPixelSize(12)
        doc.setDefaultFont(font)
        if words:   # Qt's default wraps anywhere: a narrow column cut "no_progress" as "no_progres | s"
            option = doc.defaultTextOption()
            option.setWrapMode(QTextOption.WordWrap)
            doc.setDefaultTextOption(option)
        doc.setDefaultStyleSheet(f"h1{{font-size:22px}} h2{{font-size:17px}} h3{{font-size:14px}} "
                                 f"td{{font-size:{px}px}} th{{font-size:{px}px}}")
        doc.setHtml(html)
        doc.setTextWidth(width)
        if doc.size().width() <= width + 0.5:
            break
    return doc


def _svg_size(svg: str, width: float):
    from PySide6.QtCore import QByteArray
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    if not renderer.isValid():
        raise ValueError("internal error: a report plot is not valid SVG")
    size = renderer.defaultSize()
    scale = min(1.0, width / max(size.width(), 1))
    return renderer, size.width() * scale, size.height() * scale


def _caption_doc(block: Svg, width: float):
    return _text_doc(f"<font color='#555'>{e(block.caption)}</font>", width) if block.caption else None


def _block_height(block, width: float) -> float:
    if isinstance(block, Svg):     # with its caption: a finding's text was kept with a plot whose caption did not fit
        cap = _caption_doc(block, width)
        return _svg_size(block.svg, width)[2] + (cap.size().height() if cap is not None else 0)
    if isinstance(block, Text):
        return _text_doc(block.html, width, block.words).size().height()
    return 0.0


def _kept_height(following: list, width: float) -> float:
    """Height of the blocks that must start on the same page as a keep-with-next block."""
    total = 0.0
    for block in following[:3]:    # heading -> finding text -> its first plot
        total += _block_height(block, width)
        if not (isinstance(block, Text) and block.keep_next):
            break
    return total


def _line_spans(doc) -> list:
    """(top, bottom) of every line of ``doc``; a table cell's lines as one span (a row is not
    cut between the lines of one cell)."""
    from PySide6.QtGui import QTextCursor

    layout, spans = doc.documentLayout(), []
    block = doc.begin()
    while block.isValid():
        r = layout.blockBoundingRect(block)
        if QTextCursor(block).currentTable() is not None:
            spans.append((r.y(), r.y() + r.height()))
        else:
            lines = block.layout()
            tops = (r.y() + lines.lineAt(i).y() for i in range(lines.lineCount()))
            spans += [(top, top + lines.lineAt(i).height()) for i, top in enumerate(tops)]
        block = block.next()
    return spans


def _clean_cut(spans: list, lo: float, hi: float) -> float:
    """The lowest place in (lo, hi] to cut a text block between two lines: above a line that no
    other line straddles, halfway to the line before it (in a table: between the borders of two
    rows, not through the next row's padding); ``lo`` if there is none."""
    for y in sorted({top for top, _ in spans if lo < top <= hi}, reverse=True):
        if not any(top < y < bottom for top, bottom in spans):
            cut = (max((bottom for _, bottom in spans if bottom <= y), default=y) + y) / 2
            if cut > lo:
                return cut
    return lo


def _page_part(spans: list, offset: float, room: float, h: float) -> float:
    """How much of a text block of height ``h``, from ``offset``, goes on a page with ``room``
    left: the rest if it fits, else up to a place between two lines that leaves MIN_PART for
    the next page (not two rows of a table alone); 0 if there is none."""
    if h - offset <= room:
        return h - offset
    return _clean_cut(spans, offset, min(offset + room, h - MIN_PART)) - offset


def _draw_text(pager: _Pager, block: Text, following: list = ()) -> None:
    from PySide6.QtCore import QRectF

    doc = _text_doc(block.html, pager.width, block.words)
    h = doc.size().height()
    spans = _line_spans(doc)
    need = h + (_kept_height(list(following), pager.width) if block.keep_next else 0)
    if pager.y > MARGIN and need > pager.room():
        if block.keep_next and need < pager.bottom - MARGIN and pager.half_full():   # with what must follow it
            pager.new_page()
        elif h > pager.room() and _page_part(spans, 0.0, pager.room(), h) < MIN_PART:   # too little fits here
            pager.new_page()
    offset = 0.0
    while True:    # a block taller than the room left is cut across pages, between lines
        take = _page_part(spans, offset, pager.room(), h) or pager.room()
        p = pager.painter
        p.save()
        p.translate(MARGIN, pager.y - offset)
        doc.drawContents(p, QRectF(0, offset, pager.width, take))
        p.restore()
        offset += take
        pager.y += take + BLOCK_GAP
        if offset >= h - 0.5:
            return
        pager.new_page()


def _draw_svg(pager: _Pager, block: Svg) -> None:
    from PySide6.QtCore import QRectF

    renderer, w, h = _svg_size(block.svg, pager.width)
    cap = _caption_doc(block, pager.width)
    cap_h = cap.size().height() if cap is not None else 0
    if h + cap_h > pager.room() and pager.y > MARGIN:
        pager.new_page()
    renderer.render(pager.painter, QRectF(MARGIN, pager.y, w, h))
    pager.y += h
    if cap is not None:
        p = pager.painter
        p.save()
        p.translate(MARGIN, pager.y)
        cap.drawContents(p)
        p.restore()
        pager.y += cap_h
    pager.y += BLOCK_GAP


def write_pdf(report: Report, path) -> int:
    """Write the report to ``path`` as an A4 PDF; returns the number of pages."""
    ensure_gui_app()
    from PySide6.QtCore import QMarginsF
    from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter

    writer = QPdfWriter(str(path))
    writer.setResolution(PAGE_DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait, QMarginsF(0, 0, 0, 0)))
    writer.setTitle(report.title)
    writer.setCreator("trainspect")
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot write PDF to {path}")
    try:
        painter.setRenderHint(QPainter.Antialiasing)
        pager = _Pager(writer, painter, "trainspect report – " + report.created)
        blocks = report_blocks(report)
        for i, block in enumerate(blocks):
            if isinstance(block, Text):
                _draw_text(pager, block, blocks[i + 1:i + 4])
            else:
                _draw_svg(pager, block)
        pager.finish()
    finally:
        painter.end()
    return pager.page
