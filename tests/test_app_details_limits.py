"""Run details of a run with a long config value or a huge config. Qt lays the page out on the
UI thread: a 300 KB note in the config froze the window for 9 s, 1 MB for 95 s, 200,000 keys
for 93 s (all under the recorder's 8 MB config cap)."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from trainspect.analysis import open_run  # noqa: E402
from trainspect.app.gui.widgets.details import MAX_CELL_CHARS, MAX_ROWS, run_details_html  # noqa: E402
from trainspect.recorder import Recorder  # noqa: E402


def test_a_long_value_and_many_keys_give_a_page_of_bounded_size(tmp_path):
    config = {"a_note": "x" * 300_000, "b_lr": 0.1, "grid": {f"k{i:05d}": i for i in range(5000)}}
    with Recorder(tmp_path / "r.h5", config=config) as rec:
        rec.log({"loss": 1.0}, step=0)
    with open_run(tmp_path / "r.h5") as run:
        page = run_details_html(run)
    assert len(page) < 200 * MAX_ROWS + 4 * MAX_CELL_CHARS
    assert "300,000 characters" in page and "x" * MAX_CELL_CHARS in page and "x" * (MAX_CELL_CHARS + 1) not in page
    assert f"{5002 - MAX_ROWS:,} more (trainspect info RUN --config lists them)" in page
    assert "grid.k00000" in page and "b_lr" in page
