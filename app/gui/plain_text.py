"""Text read from a run file, shown as typed.

Run, metric and layer names come from a file anyone can write. Qt renders a label, a tooltip or
a pyqtgraph title/legend as rich text when the text looks like HTML: ``<img src="/dev/zero">``
as a run name made the app read /dev/zero until it aborted, and ``<h1>`` spoofed the window.
And U+202E (right-to-left override) or a zero-width space makes two names look alike or one
name look like another. So every name is shown through :func:`shown` (invisible characters
written visibly, as the CLI does: app/terminal_text.py), and reaches Qt either as plain text
(:func:`plain`) or escaped (:func:`rich`, :func:`tip`).
"""
from __future__ import annotations

import html
import re
import unicodedata

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt  # Qt::mightBeRichText is bound in QtGui

# Letters that draw nothing (Hangul fillers, the braille blank): a name of them looks empty.
_BLANK_LETTERS = "\u115f\u1160\u3164\uffa0\u2800"


def _invisible(ch: str) -> bool:
    """Controls, line breaks, bidi and zero-width marks (Unicode's Cc, Cf, Zl, Zp categories),
    variation selectors and blank letters: what would hide, reorder or fake a name's text."""
    cat = unicodedata.category(ch)
    return (cat in ("Cc", "Cf", "Zl", "Zp") or ch in _BLANK_LETTERS
            or "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef")


_ODD_PRINTABLE = re.compile("[" + _BLANK_LETTERS + "\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def shown(text) -> str:
    """``text`` with each invisible or reordering character written as ``⟨U+202E⟩``: the name
    on screen is the name in the file, letter for letter (newlines too: a name is one line)."""
    s = str(text)
    if s.isprintable() and not _ODD_PRINTABLE.search(s):     # the common case: nothing to mark
        return s
    return "".join(f"⟨U+{ord(ch):04X}⟩" if _invisible(ch) else ch for ch in s)


def rich(text) -> str:
    """A name for a rich-text string (a label with markup, a plot title, a legend): shown and escaped."""
    return html.escape(shown(text), quote=False)


def tip(text: str) -> str:
    """A tooltip that shows ``text`` literally. Qt renders a tooltip as rich text when it looks
    like HTML (``Qt::mightBeRichText``): such a text is escaped, its lines kept; any other is
    shown as plain text already and returned as it is. Callers pass names through :func:`shown`
    (the text's own line breaks are the tooltip's lines)."""
    text = str(text)
    if not GuiQt.mightBeRichText(text):
        return text
    lines = [html.escape(line, quote=False) for line in str(text).split("\n")]
    return "<p style='white-space:pre-wrap'>" + "<br>".join(lines) + "</p>"


def plain(label):
    """``label`` (a QLabel) set to show its text as typed, never as rich text."""
    label.setTextFormat(Qt.PlainText)
    return label
