"""A run resumed (``Recorder(..., resume=True)``) or replaced (``overwrite=True``) at its path
while the window shows it: the window reopens the file, shows the new segment (or the new
run) in the same row and says so in the row and the status bar. Real writer processes."""
from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.gui_helpers import file_held, open_runs, show_panel  # noqa: E402
from tests.test_resume import DEADLINE, _writer  # noqa: E402

WAIT_MS = 60_000


def _curve_steps(window, entry):
    """The steps of the points the loss curve holds (every point: fewer than its buckets)."""
    curve = window.scalars.curves.get(("loss", entry.key))
    return None if curve is None or curve.rebuild else np.asarray(curve.step_x_pairs()[0])


def _restarts(window):
    said = []
    window.runs.runRestarted.connect(lambda e, message: said.append((e, message)))
    return said


@pytest.mark.parametrize("mode", ["resume", "overwrite"])
def test_a_live_run_restarted_under_the_window_is_reopened(window, tmp_path, qtbot, mode):
    """The writer dies (kill -9) while the window follows it; a new one resumes the run from
    step 300 or replaces it: the window shows the new data, says what happened, no error."""
    path = tmp_path / "run.h5"
    first = _writer(path, 0, 400, "die")
    second = None
    try:
        assert first.stdout.readline().startswith("started")
        entry, = open_runs(window, [path])
        window.view.set_metrics(["loss"])
        said = _restarts(window)
        old_run = entry.run
        assert first.stdout.readline().startswith("done")
        qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and len(s) == 400, timeout=WAIT_MS)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=DEADLINE)
        second = _writer(path, 300, 600, mode)    # within the 10 s before the run reads as stale
        qtbot.waitUntil(lambda: bool(said), timeout=WAIT_MS)
        expected = np.arange(600) if mode == "resume" else np.arange(300, 600)
        qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and np.array_equal(s, expected)
                        and window.live.status(entry) is not None and window.live.status(entry).state == "finished",
                        timeout=WAIT_MS)
        second.wait(timeout=DEADLINE)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(DEADLINE)
    (e, message), = said
    assert e is entry and entry.run is not old_run and old_run.closed
    notice = "resumed (writer session 2)" if mode == "resume" else "replaced by a new run"
    assert notice in message and notice in entry.status_text()
    assert "finished at step 599" in entry.status_text()
    window.run_list.rebuild()
    assert notice in window.run_list.list.item(0).text()                  # the row says it
    assert notice in window.run_state.toolTip()                            # the status bar too
    assert entry.error == "" and len(window.runs.rows()) == 1 and window.runs.current is entry
    if mode == "resume":                                                   # Run details list the sessions
        show_panel(window, qtbot, window.details)
        text = window.details.text.toPlainText()
        assert "Writer sessions" in text and "session 2" in text and "from step 300" in text


def test_a_resume_that_ends_before_the_window_looks_is_seen(window, tmp_path, qtbot):
    """The whole resumed session runs while the window processes no event (a long paint, a
    suspended laptop): the next look sees the session count grown and reopens the file."""
    path = tmp_path / "run.h5"
    first = _writer(path, 0, 400, "die")
    try:
        assert first.stdout.readline().startswith("started")
        entry, = open_runs(window, [path])
        window.view.set_metrics(["loss"])
        said = _restarts(window)
        assert first.stdout.readline().startswith("done")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=DEADLINE)
        _writer(path, 300, 600, "resume").wait(timeout=DEADLINE)   # no event processed meanwhile
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(DEADLINE)
    qtbot.waitUntil(lambda: bool(said), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and np.array_equal(s, np.arange(600)),
                    timeout=WAIT_MS)
    assert "resumed (writer session 2)" in said[0][1] and entry.error == ""


def _finished_run_shown(window, path):
    """A run of steps 0..99 written to the end, open in the window with its loss plotted."""
    first = _writer(path, 0, 100, "finish")
    assert first.stdout.readline().startswith("started")
    first.wait(timeout=DEADLINE)
    entry, = open_runs(window, [path])
    window.view.set_metrics(["loss"])
    return entry


def test_a_finished_run_resumed_under_the_window_is_reopened(window, tmp_path, qtbot):
    """A finished run is not polled; a writer taking it up again (resume) is seen when the
    file changes, and the new segment is shown."""
    path = tmp_path / "run.h5"
    entry = _finished_run_shown(window, path)
    said = _restarts(window)
    qtbot.waitUntil(lambda: window.live.status(entry) is not None and window.live.status(entry).state == "finished",
                    timeout=WAIT_MS)
    second = _writer(path, 100, 300, "resume")
    try:
        qtbot.waitUntil(lambda: bool(said), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and np.array_equal(s, np.arange(300))
                        and window.live.status(entry) is not None and window.live.status(entry).state == "finished",
                        timeout=WAIT_MS)
        second.wait(timeout=DEADLINE)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(DEADLINE)
    assert "resumed (writer session 2)" in said[0][1] and entry.error == ""
    assert "finished at step 299" in window.live.status_text(entry)


def test_a_reopen_does_not_wait_for_a_read_of_the_old_file_that_never_returns(window, tmp_path, qtbot, monkeypatch):
    """A read of the old handle hangs (a stuck disk) while the run is resumed and reopened: after
    the deadline the row is reopened anyway and shows the new segment, the status bar says the
    old read was left behind; once that read returns, the old handle is closed and the run is
    read once more (no second handle left open), still with no error."""
    from trainspect.app.gui import model

    monkeypatch.setattr(model, "REOPEN_CLOSE_WAIT_S", 1.0)
    path = tmp_path / "run.h5"
    entry = _finished_run_shown(window, path)
    qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and len(s) == 100, timeout=WAIT_MS)
    said = _restarts(window)
    old = entry.run
    with file_held(old):
        _writer(path, 100, 300, "resume").wait(timeout=DEADLINE)
        window.runs.reopen(entry)      # what the live tail asks once it sees the resume
        qtbot.waitUntil(lambda: entry.ready and entry.run is not old and bool(said), timeout=WAIT_MS)
        (e, message), = said
        assert e is entry and "did not return within 1 s" in message and "resumed (writer session 2)" in message
        assert message in window.statusBar().currentMessage()
        qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and np.array_equal(s, np.arange(300)),
                        timeout=WAIT_MS)
        reopened = entry.run
    # the old read returned: its handle is closed and the run read once more, beside no other handle
    qtbot.waitUntil(lambda: entry.ready and entry.run is not reopened and reopened.closed, timeout=WAIT_MS)
    assert old.closed
    qtbot.waitUntil(lambda: (s := _curve_steps(window, entry)) is not None and np.array_equal(s, np.arange(300)),
                    timeout=WAIT_MS)
    assert entry.error == "" and entry.state == "ready" and "resumed (writer session 2)" in entry.status_text()
