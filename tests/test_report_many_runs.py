"""A report of a sweep: up to MAX_SIDE_BY_SIDE runs get a column each; more get a row each, with a
column per field that differs (a column per run left 8 runs' cells a word wide on A4). Its first
figure draws one result against the setting that differs (the Compare tab's scatter, as SVG): the
learning rate on a log axis against the best validation loss, a point per run; none when no
numeric setting differs."""
import re

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
    assert "lr" in c.header and "batch" not in c.header and "steps" not in c.header
    lr = c.header.index("lr") - 1
    assert [cells[lr] for _, cells, _ in c.rows][:3] == ["1", "0.1", "0.01"]
    assert "One row per run" in render_html(_report(_runs(tmp_path / "again", n)))


def test_a_few_runs_stay_side_by_side(tmp_path):
    c = _report(_runs(tmp_path, 2)).comparison
    assert not c.by_run and c.header == ["", "run0", "run1"]
    assert any(label == "config: batch" and not differs for label, _, differs in c.rows)


LRS = (1e-4, 1e-3, 1e-2)


def _sweep(tmp_path, config_of, names=None):
    paths = []
    for k, lr in enumerate(LRS):
        path = tmp_path / f"r{k}.h5"
        with Recorder(path, name=(names or {}).get(k, f"lr{lr:g}"), config=config_of(lr)) as rec:
            for step in range(40):
                rec.log({"train/loss": (k + 1) / (step + 1)}, step=step)
                if step % 10 == 9:
                    rec.log({"val/loss": 0.5 + abs(k - 1) * 0.2 + 1.0 / (step + 1)}, step=step)
        paths.append(path)
    return paths


def test_the_best_validation_loss_against_the_learning_rate_is_the_first_figure(tmp_path):
    report = _report(_sweep(tmp_path, lambda lr: {"lr": lr, "batch": 64}))
    fig = report.comparison.figures[0]
    assert fig.title == "val loss best against lr"
    assert len(re.findall(r"<circle ", fig.svg)) == 3
    assert "lr (log scale)" in fig.svg
    for lr in ("1e-4", "0.001", "0.01"):                      # the sweep's values are the ticks
        assert f">{lr}</text>" in fig.svg
    cx = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', fig.svg)]
    assert cx[1] - cx[0] == pytest.approx(cx[2] - cx[1], abs=1.0)   # decades evenly spaced
    html = render_html(report)
    assert html.index("val loss best against lr") < html.index("Training loss")


def test_no_sweep_figure_when_no_numeric_setting_differs(tmp_path):
    report = _report(_sweep(tmp_path, lambda lr: {"optimizer": {1e-4: "adam", 1e-3: "sgd", 1e-2: "lion"}[lr]}))
    assert not any("against" in f.title for f in report.comparison.figures)


def test_run_names_in_the_figure_are_escaped(tmp_path):
    report = _report(_sweep(tmp_path, lambda lr: {"lr": lr}, names={0: "<script>x</script>"}))
    svg = report.comparison.figures[0].svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_every_run_of_a_sweep_has_its_own_colour_and_the_apps(tmp_path):
    """12 runs: the 1st and the 11th (here the best and the worst) were both blue."""
    from trainspect.app.run_colours import run_color

    html = render_html(_report(_runs(tmp_path, 12)))
    figure = html[html.index("Training loss"):]
    figure = figure[:figure.index("</svg>")]
    strokes = re.findall(r'stroke="(#[0-9A-Fa-f]{6})"', figure)
    runs = [run_color(i).lower() for i in range(12)]
    assert len(set(runs)) == 12
    assert set(runs) <= {s.lower() for s in strokes}
