"""While a window is open, cyclic garbage is collected on the GUI thread only: a background reader
that collected a closed panel's Qt wrappers ran ~QObject off the GUI thread and deadlocked the
app against it (a CI test window stuck 15 minutes in QObject::~QObject on both threads)."""
from __future__ import annotations

import gc
import threading

import pytest

pytest.importorskip("PySide6")


class _Cycle:
    """Garbage only the cyclic collector frees; says on which thread it was freed."""
    freed_on: list = []

    def __init__(self):
        self.me = self

    def __del__(self):
        _Cycle.freed_on.append(threading.current_thread().name)


def _allocate_a_lot():
    junk = []
    for _ in range(50_000):     # far past generation 0's threshold: automatic collection would run here
        junk.append([[]])
    return len(junk)


def test_a_background_thread_never_collects_while_a_window_is_open(window, qtbot):
    assert not gc.isenabled()
    _Cycle.freed_on.clear()
    _Cycle()                     # unreachable at once, held by its own cycle
    t = threading.Thread(target=_allocate_a_lot, name="reader")
    t.start()
    t.join()
    assert "reader" not in _Cycle.freed_on
    qtbot.waitUntil(lambda: bool(_Cycle.freed_on), timeout=30_000)   # the GUI thread's timer collects it (late on a loaded machine)
    assert _Cycle.freed_on == [threading.main_thread().name]


def test_closing_the_last_window_turns_automatic_collection_back_on(qtbot):
    from trainspect.app.gui.main_window import MainWindow
    from trainspect.app.gui.settings import make_settings
    before = gc.isenabled()
    w = MainWindow(settings=make_settings())
    qtbot.addWidget(w)
    assert not gc.isenabled()
    w.close()
    assert gc.isenabled() == before
