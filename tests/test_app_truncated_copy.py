"""A copy of a finished run cut short (an interrupted scp), opened seconds after it was made:
the app took it for a run starting, waited 30 s, then said "the run did not start within 30 s".
No writer has it open, so nothing will complete it: the error shows at once, and says so."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from trainspect.analysis import RunFileError, open_run  # noqa: E402

from tests.fixtures_runs import make_run  # noqa: E402


def _cut_copy(tmp_path, keep=0.3):
    good = make_run(tmp_path / "good.h5", n_steps=4000, n_layers=4)
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])     # written just now: a fresh mtime
    return cut


def test_the_reader_says_no_writer_holds_the_cut_copy(tmp_path):
    cut = _cut_copy(tmp_path)
    with pytest.raises(RunFileError, match="no writer has it open"):
        open_run(cut)


def test_the_app_reports_a_fresh_cut_copy_without_waiting_for_a_writer(window, qtbot, tmp_path):
    cut = _cut_copy(tmp_path)
    (row,) = window.open_paths([cut])
    qtbot.waitUntil(lambda: row.state == "failed" or "starting" in row.error, timeout=20_000)
    assert "starting" not in row.error
    qtbot.waitUntil(lambda: row.state == "failed", timeout=20_000)
    assert "interrupted copy" in row.error


def test_a_fresh_cut_copy_of_a_live_run_fails_at_once_when_no_writer_holds_it(window, qtbot, tmp_path):
    """A copy taken while its writer ran (superblock write flags set), cut short and opened a
    moment later, reads 'was it copied while being written?': a starting error, so the app waited
    30 s and said 'the run did not start' (attack round 4, B5). No writer holds the copy's lock:
    the real reason shows at once."""
    from trainspect.recorder import Recorder

    live = tmp_path / "live.h5"
    with Recorder(live) as rec:
        for step in range(3000):
            rec.log({"loss": 1.0 / (step + 1)}, step=step)
        rec.flush()
        data = live.read_bytes()                  # taken while the writer holds the file
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError, match="copied while being written"):
        open_run(cut)
    (row,) = window.open_paths([cut])
    qtbot.waitUntil(lambda: row.state == "failed", timeout=10_000)
    assert "did not start" not in row.error and "copied while being written" in row.error
