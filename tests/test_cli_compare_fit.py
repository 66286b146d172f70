"""`trainspect compare` on a mixed folder fits the terminal (trial 17, F8: lines of 1707
characters, 40 HF `training_args.*` columns; a tab in a metric's name broke the alignment) and
tells apart runs of the same name (F7: a script run twice on one path records to x-2.h5 under the
same name, and two rows both read `pl_none`)."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from trainspect.app.cli import main
from trainspect.app.terminal_text import display_width
from trainspect.recorder import Recorder


def _record(path, name=None, config=None, metrics=(), steps=60, seed=0):
    rng = np.random.default_rng(seed)
    with Recorder(path, name=name, config=config or {}) as rec:
        for step in range(steps):
            loss = 2.0 * np.exp(-step / 20) + 0.1 * rng.random() + 0.1 * seed
            rec.log({"train/loss": loss, **{m: loss / (i + 2) for i, m in enumerate(metrics)}}, step=step)
            if step % 10 == 0:
                rec.log({"val/loss": loss + 0.1}, step=step)


@pytest.fixture
def mixed(tmp_path):
    """A sweep of 3 runs (lr differs) beside 2 HF-style runs of 45 long config keys each."""
    for k, lr in enumerate((1e-3, 1e-2, 1e-1)):
        _record(tmp_path / f"sweep{k}.h5", config={"lr": lr, "bug": "none"}, seed=k,
                metrics=["val/acc", "tab\tname", *(f"extra/metric_{i}" for i in range(6))])
    for k in range(2):
        args = {f"training_args.option_number_{i}_with_a_long_name": f"value-{k}-{i}-xxxxxxxxxxxx" for i in range(45)}
        _record(tmp_path / f"hf{k}.h5", config=args, seed=3 + k)
    return tmp_path


def _compare(capsys, *args):
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_table_fits_the_terminal_and_says_what_it_left_out(mixed, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = _compare(capsys, mixed)
    assert code == 0, err
    lines = out.splitlines()
    assert max(display_width(line) for line in lines) <= 100, max(lines, key=len)
    header = lines[0]
    assert header.startswith("run") and "train loss end" in header and "val loss best" in header
    assert "left out to fit 100 characters" in out and "--columns" in out and "--width 0" in out
    assert len([line for line in lines if line.startswith(("sweep", "hf"))]) == 5
    monkeypatch.setenv("COLUMNS", "60")     # narrower: still every row, losses before config keys
    code, out, _ = _compare(capsys, mixed)
    assert "train loss end" in out.splitlines()[0]
    assert max(display_width(line) for line in out.splitlines()) <= 60


def test_width_0_shows_every_column_and_csv_is_whole(mixed, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    _, out, _ = _compare(capsys, mixed, "--width", "0")
    assert max(len(line) for line in out.splitlines()) > 1000 and "left out" not in out
    _, out, _ = _compare(capsys, mixed, "--csv")
    header = next(csv.reader(io.StringIO(out)))
    assert "lr" in header and "extra/metric_5 last" in header and len(header) > 40 + 3


def test_columns_picks_config_keys_and_metrics_by_name_prefix_or_glob(mixed, capsys):
    code, out, err = _compare(capsys, mixed, "--columns", "lr,extra/metric_3*,val/acc l")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header == ["run", "state", "steps", "lr", "extra/metric_3", "last", "val/acc", "last"]
    code, _, err = _compare(capsys, mixed, "--columns", "no_such_column")
    assert code == 2 and "no_such_column" in err


def test_the_sort_column_is_shown_however_narrow(mixed, capsys):
    code, out, _ = _compare(capsys, mixed, "--sort", "extra/metric_5 last", "--width", "70")
    assert code == 0 and "extra/metric_5 last" in out.splitlines()[0]


def test_a_tab_in_a_metric_name_is_escaped_and_keeps_the_columns_in_line(mixed, capsys):
    code, out, _ = _compare(capsys, mixed, "--columns", "tab*,lr", "--width", "0")
    assert code == 0
    lines = out.splitlines()
    assert "\t" not in out and "tab\\tname last" in lines[0]
    column = lines[0].index("tab\\tname")
    dashes = lines[1]
    assert dashes[column] == "-" and dashes[column - 1] == " "       # the header sits over its column
    rows = [line for line in lines[2:] if line.startswith("sweep")]
    ends = {len(line) for line in rows}
    assert len(ends) == 1 and ends == {len(dashes)}                   # numbers right-aligned to its edge


def test_a_wide_character_run_name_keeps_its_row_in_line(tmp_path, capsys):
    _record(tmp_path / "a.h5", name="名前 run ✓")
    _record(tmp_path / "b.h5", name="plain", seed=1)
    _, out, _ = _compare(capsys, tmp_path, "--width", "0")
    rows = [line for line in out.splitlines() if "finished" in line]
    assert len(rows) == 2
    starts = {display_width(line[:line.index("finished")]) for line in rows}
    assert len(starts) == 1, out


def test_rows_of_the_same_run_name_show_their_files(tmp_path, capsys):
    first = tmp_path / "pl_none.h5"
    _record(first, name="pl_none", config={"lr": 0.001})     # named as the Lightning logger names it
    with pytest.warns(Warning, match="already holds a run"):
        _record(first, name="pl_none", config={"lr": 0.01}, seed=1)     # the script run again: goes to pl_none-2.h5
    _record(tmp_path / "other.h5", config={"lr": 0.1}, seed=2)
    code, out, _ = _compare(capsys, first, tmp_path / "pl_none-2.h5", tmp_path / "other.h5")
    assert code == 0
    rows = out.splitlines()[2:5]
    assert rows[0].startswith("pl_none (pl_none.h5) ") and rows[1].startswith("pl_none (pl_none-2.h5) ")
    assert rows[2].startswith("other ")       # a name of its own stays as it is


def test_csv_rows_of_the_same_run_name_carry_their_file(tmp_path, capsys):
    first = tmp_path / "pl_none.h5"
    _record(first, name="pl_none", config={"lr": 0.001})
    with pytest.warns(Warning, match="already holds a run"):
        _record(first, name="pl_none", config={"lr": 0.01}, seed=1)
    code, out, _ = _compare(capsys, tmp_path, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and sorted((r["run"], r["file"].rsplit("/", 1)[-1]) for r in rows) == [
        ("pl_none", "pl_none-2.h5"), ("pl_none", "pl_none.h5")]
    _, out, _ = _compare(capsys, tmp_path / "pl_none.h5", "--csv")     # distinct names: no file column
    assert "file" not in next(csv.reader(io.StringIO(out)))
