"""Helpers for tests of the desktop app: open runs and wait for the background reads."""
from __future__ import annotations

import contextlib
import os
import threading

WAIT_S = 60.0   # generous: a loaded machine only makes the background reads slower
SHOTS = os.environ.get("TRAINSPECT_UX_SHOTS")   # a folder: the UX tests save what they looked at there


def shoot(window, name) -> None:
    """Save the window as ``$TRAINSPECT_UX_SHOTS/name`` when that folder is set (to look at by eye)."""
    if SHOTS:
        from trainspect.app.gui.main_window import render_screenshot
        render_screenshot(window, os.path.join(SHOTS, name))


def open_runs(window, paths) -> list:
    """Open ``paths`` like File > Open and wait until each is open or failed; returns the
    entries that opened, in the order given."""
    rows = window.open_paths(paths)
    assert window.wait_loaded(WAIT_S), f"still opening after {WAIT_S:.0f} s: {window.runs.loading()}"
    return [e for e in dict.fromkeys(rows) if e.ready]


def show_panel(window, qtbot, panel) -> None:
    """Bring ``panel`` (a tab) to the front and wait until its background reads are shown."""
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.isVisible() and not panel.reading(), timeout=int(WAIT_S * 1000))


def recorded(entry, name: str):
    """The series ``name`` as the file holds it, read through the run's lock (the advisor may be
    reading the file on its own thread: a plain GUI-thread read would give up after 0.25 s)."""
    with entry.run.locked(WAIT_S) as run:
        return run.scalar(name)


@contextlib.contextmanager
def file_held(run):
    """A read that holds ``run``'s file (a GuardedRun) on another thread until the block ends:
    a read hung inside HDF5, as far as every other reader of that file can tell."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with run.locked():
            held.set()
            release.wait(WAIT_S)

    holder = threading.Thread(target=hold, name="test-hung-read", daemon=True)
    holder.start()
    try:
        assert held.wait(WAIT_S), "another read kept the file: it could not be held"
        yield
    finally:
        release.set()
        holder.join(WAIT_S)
