"""The Compare tab's scatter plot without Qt (app/sweep_scatter.py): which settings can be an x
axis, which axes come first, which runs have a point, when the x axis is logarithmic."""
import math

from trainspect.app.run_table import RunRow
from trainspect.app.sweep_scatter import default_axes, log_axis, numeric_keys, number, points


def _row(name, config, values):
    return RunRow(name, "finished", 10, config, values)


def test_only_settings_that_are_numbers_and_differ_can_be_the_x_axis():
    rows = [_row("a", {"lr": "0.001", "opt": "adam", "batch": "64", "wd": "0.1", "flag": "True"}, {}),
            _row("b", {"lr": "1e-2", "opt": "sgd", "batch": "64", "wd": "nan", "flag": "False"}, {}),
            _row("c", {"lr": "0.1", "opt": "sgd", "batch": "64"}, {})]
    assert numeric_keys(rows, ["opt", "batch", "lr", "wd", "flag"]) == ["lr"]
    assert number(True) is None and number("inf") is None and number("3") == 3.0


def test_a_learning_rate_and_the_best_validation_loss_come_first():
    assert default_axes(["batch", "optim.lr"], ["train loss end", "val loss best", "val/acc last"]) == \
        ("optim.lr", "val loss best")
    assert default_axes(["batch", "learning_rate"], ["train loss end"]) == ("learning_rate", "train loss end")
    assert default_axes(["batch", "layers"], ["val/acc last"]) == ("batch", "val/acc last")   # no LR: the first
    assert default_axes(["clr_cycles"], ["x"]) == ("clr_cycles", "x")     # "lr" inside a word is not an LR
    assert default_axes([], []) == (None, None)


def test_runs_missing_either_number_get_no_point():
    rows = [_row("a", {"lr": "0.1"}, {"val loss best": 0.5}),
            _row("b", {"lr": "0.01"}, {"val loss best": math.nan}),
            _row("c", {}, {"val loss best": 0.3}),
            _row("d", {"lr": "0.001"}, {})]
    assert points(rows, "lr", "val loss best") == [(0, 0.1, 0.5)]


def test_a_setting_spread_over_decades_gets_a_log_axis():
    assert log_axis([1e-4, 1e-3, 1e-2])
    assert not log_axis([32, 64, 128])              # 4x: linear
    assert not log_axis([-1.0, 0.0, 100.0])         # not all positive
    assert not log_axis([])
