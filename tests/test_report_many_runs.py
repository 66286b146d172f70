"""A report of a sweep: up to MAX_SIDE_BY_SIDE runs get a column each; more get a row each, with a
column per field that differs (a column per run left 8 runs' cells a word wide on A4)."""
import pytest

from trainspect.app.report.content import MAX_SIDE_BY_SIDE, build_report, open_runs
from trainspect.app.report.html import render_html
from trainspect.recorder import Recorder


def _runs(tmp_path, n):
    paths = []
    for k in range(n):
        path = tmp_path / f"r{k}.h5"
        with Recorder(path, name=f"run{k}", config={"lr": 10.0 ** -k, "batch": 64}) as rec:
            for step in range(40):
                rec.log({"train/loss": (k + 1) / (step + 1)}, step=step)
        paths.append(path)
    return paths


def _report(paths):
    runs = open_runs(paths)
    try:
        return build_report(runs, diagnose_fn=lambda run: [])
    finally:
        for r in runs:
            r.close()


@pytest.mark.parametrize("n", [MAX_SIDE_BY_SIDE + 1, 12])
def test_many_runs_are_one_row_each_with_the_fields_that_differ(tmp_path, n):
    c = _report(_runs(tmp_path, n)).comparison
    assert c.by_run and c.header[0] == "run"
    assert [name for name, _, _ in c.rows] == [f"run{k}" for k in range(n)]
    assert "config: lr" in c.header and "config: batch" not in c.header and "steps" not in c.header
    lr = c.header.index("config: lr") - 1
    assert [cells[lr] for _, cells, _ in c.rows][:3] == ["1", "0.1", "0.01"]
    assert "One row per run" in render_html(_report(_runs(tmp_path / "again", n)))


def test_a_few_runs_stay_side_by_side(tmp_path):
    c = _report(_runs(tmp_path, 2)).comparison
    assert not c.by_run and c.header == ["", "run0", "run1"]
    assert any(label == "config: batch" and not differs for label, _, differs in c.rows)
