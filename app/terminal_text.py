"""Text for a terminal: names read from a run file are data, not terminal commands.

A metric or run name holding ``ESC ] 0 ; ... BEL`` retitles the terminal, ``ESC [ 2 J`` clears
it, and U+202E (right-to-left override) shows ``loss<U+202E>fdp.exe`` as ``lossexe.pdf``. The CLI's stdout and stderr are
wrapped once (:func:`guarded`); every control character but newline, tab and carriage return
(the import progress bar) is written as a visible ``\\x1b``-style escape instead.
"""
from __future__ import annotations

import contextlib
import sys

# C0 controls but \t \n \r, DEL, the C1 controls, and Unicode's bidirectional overrides/isolates.
_CONTROLS = [c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + list(range(0x7F, 0xA0))
_BIDI = list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x200E, 0x200F, 0x061C]
_VISIBLE = {c: f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in _BIDI}


_LINE_BREAKS = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def one_line(name: str) -> str:
    """A name read from a run file as one line: its newlines, returns and tabs escaped too (a
    metric named "y\nstatus: finished, no problems" forged a line of `trainspect info`)."""
    text = str(name).translate(_LINE_BREAKS)
    if text != text.strip(" "):      # "train/loss " printed as a second "train/loss" (attack round 4, B8)
        return repr(text)
    return text


MAX_SHOWN_CHARS = 200   # a run name or config value from a shared file: one screen line, not 10 MB


def clip(text, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as one line (see :func:`one_line`) of at most ``limit`` terminal cells, a cut one
    ending in "… (N chars)": a 10 MB run name printed 20 MB from `info` and 30 MB of `report`
    progress lines (trial 18 A5); compare's columns cut the same way (:func:`fit_width`)."""
    text = str(text)
    if len(text) > 4 * limit:   # cut before escaping: a 60 MB value is not copied whole
        n, text = len(text), text[: 4 * limit]
    else:
        n = None
    shown = one_line(text)
    if n is None and display_width(shown) <= limit:
        return shown
    return fit_width(shown, limit) + f" ({n or len(str(text)):,} chars)"


def visible(text: str) -> str:
    """``text`` with control and bidi-override characters written as escapes."""
    return text.translate(_VISIBLE)


class GuardedStream:
    """A text stream whose ``write`` goes through :func:`visible`; everything else (``buffer``
    for binary output, ``isatty``, ``flush``...) is the wrapped stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(visible(text) if isinstance(text, str) else text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded():
    """sys.stdout and sys.stderr guarded for the duration (restored after: tests call main())."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None or isinstance(s, GuardedStream) else GuardedStream(s) for s in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


MAX_WARNING_CHARS = 300


def warning_texts(caught) -> list:
    """Warnings caught from the recorder or an importer as single lines for a terminal, each
    once: escaped, a long one cut in its middle (a 5000-character tag quoted in full), without
    Python's "file:line: Category:" form."""
    out = []
    for message in dict.fromkeys(str(w.message).removeprefix("trainspect: ") for w in caught):
        if len(message) > MAX_WARNING_CHARS:
            message = message[:MAX_WARNING_CHARS // 2] + " … " + message[-MAX_WARNING_CHARS // 2:]
        out.append(visible(one_line(message)))
    return out


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes: East Asian wide characters two, combining marks none (a
    CJK run name put every later column of its row out of line)."""
    import unicodedata

    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def fit_width(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, a cut one ending in "…"."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = display_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` terminal cells (on the left when ``right``)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill
