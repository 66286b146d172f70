"""`trainspect compare`: a sweep's runs as one table in the terminal (the app's Compare tab
without Qt): the config keys that differ, the losses, the other metrics; sorted, as CSV, with
the advisor's verdict on request; a run that cannot be read is named and the others printed."""
import csv
import io

import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.app.cli import main
from trainspect.app.report.content import run_summary
from trainspect.recorder import Recorder

FLOORS = {1e-2: 0.5, 1e-4: 1.5, 1e-3: 0.1}


@pytest.fixture(autouse=True)
def piped(monkeypatch):
    """The table as printed into a pipe (120 columns): pytest-xdist's workers set $COLUMNS=80,
    which the table fits (tests/test_cli_compare_fit.py) by leaving columns out."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def sweep(tmp_path):
    for k, (lr, floor) in enumerate(FLOORS.items()):
        rng = np.random.default_rng(k)
        with Recorder(tmp_path / f"lr{lr:g}.h5", name=f"lr{lr:g}", config={"lr": lr, "batch": 64}) as rec:
            for step in range(200):
                loss = floor + 2.0 * np.exp(-step / 40) + 0.05 * rng.random()
                rec.log({"train/loss": loss}, step=step)
                if step % 20 == 0:
                    rec.log({"val/loss": loss + 0.2, "val/acc": 1.0 / (1.0 + loss)}, step=step)
    return tmp_path


def _run(capsys, *args):
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_row_per_run_with_the_differing_config_and_the_losses(sweep, capsys):
    code, out, err = _run(capsys, sweep)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run", "state", "steps", "lr", "train", "loss", "end", "val", "loss", "best", "val",
                                "loss", "last", "val/acc", "best", "val/acc", "last"]
    assert len([ln for ln in lines if ln.startswith("lr")]) == 3
    assert "batch" not in lines[0] and "1 config key(s) not shown" in out


def test_sorted_by_a_column_prefix_and_written_as_csv_with_full_precision(sweep, capsys):
    code, out, _ = _run(capsys, sweep, "--sort", "val loss b", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run"] for r in rows] == ["lr0.001", "lr0.01", "lr0.0001"]
    for r in rows:
        with open_run(sweep / f"{r['run']}.h5") as run:
            _, metrics = run_summary(run)
        assert float(r["val loss best"]) == metrics["val_best"]       # repr round-trips exactly
    code, out, _ = _run(capsys, sweep, "--sort", "lr", "--desc", "--csv")
    assert [r["lr"] for r in csv.DictReader(io.StringIO(out))] == ["0.01", "0.001", "1e-4"]   # as numbers


def test_the_advisor_column_and_a_run_that_cannot_be_read(sweep, capsys):
    with Recorder(sweep / "lr1.h5", name="lr1", config={"lr": 1.0, "batch": 64}) as rec:
        for step in range(200):
            rec.log({"train/loss": 2.0 * np.exp(-step / 20) + 0.3 if step < 60 else 0.3 * 1.04 ** (step - 60)},
                    step=step)
    (sweep / "broken.h5").write_bytes(b"not an hdf5 file at all" * 10)
    code, out, err = _run(capsys, sweep, "--diagnose", "--sort", "advisor", "--csv")
    assert code == 2 and "broken.h5" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4
    lr1 = next(r for r in rows if r["run"] == "lr1")
    assert "divergence" in lr1["advisor"]


def test_an_unknown_sort_column_lists_the_columns(sweep, capsys):
    code, _, err = _run(capsys, sweep, "--sort", "nope")
    assert code == 2 and "val loss best" in err and "lr" in err


def test_no_runs_is_an_error(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path)
    assert code == 2 and "no run files" in err


def test_a_tensorboard_sweep_shows_its_hyperparameters_not_where_it_came_from(tmp_path, capsys, monkeypatch):
    """TensorBoard logs with add_hparams: the lr that differs is a column; the source folder, which
    differs in every run, is not (it is shown with --all-config)."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter
    monkeypatch.setenv("TRAINSPECT_CACHE_DIR", str(tmp_path / "cache"))
    for lr in (0.1, 0.01):
        w = SummaryWriter(str(tmp_path / "runs" / f"lr{lr}"))
        for step in range(30):
            w.add_scalar("Loss/train", lr + 1.0 / (step + 1), step)
        w.add_hparams({"lr": lr, "batch": 32}, {"hparam/acc": 0.5}, run_name=".")
        w.close()
    code, out, err = _run(capsys, tmp_path / "runs", "--csv", "--sort", "lr")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["lr"] for r in rows] == ["0.01", "0.1"]
    assert "imported_from" not in rows[0] and "batch" not in rows[0]
    code, out, _ = _run(capsys, tmp_path / "runs", "--csv", "--all-config")
    assert {"imported_from", "batch"} <= set(next(csv.DictReader(io.StringIO(out))))


@pytest.mark.parametrize("name, way", [("val/acc", "max"), ("val_accuracy", "max"), ("eval/f1", "max"),
                                       ("val/acc@1", "max"), ("val/error", "min"), ("eval/perplexity", "min"),
                                       ("lr", None), ("grad_norm", None), ("samples_per_sec", None), ("epoch", None)])
def test_a_metrics_name_says_which_way_is_better(name, way):
    from trainspect.app.run_table import better
    assert better(name) == way


def test_a_result_logged_once_gets_no_best_column_beside_its_last(tmp_path, capsys):
    """A final score logged once per run (add_hparams' hparam/accuracy, a test accuracy at the
    end) has its best equal to its last in every run: one column, not two the same."""
    for k, acc in enumerate((0.8, 0.9)):
        with Recorder(tmp_path / f"r{k}.h5", name=f"r{k}", config={"lr": 10.0 ** -k}) as rec:
            for step in range(20):
                rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
            rec.log({"test/acc": acc}, step=19)
    code, out, err = _run(capsys, tmp_path, "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "test/acc last" in rows[0] and "test/acc best" not in rows[0]
    assert sorted(float(r["test/acc last"]) for r in rows) == [0.8, 0.9]


def test_csv_cells_from_run_files_never_run_as_spreadsheet_formulas(tmp_path, capsys):
    """Names and settings come from whoever wrote the runs (a colleague's file, a Lightning
    hparams.yaml): a cell starting with = + - @ would run in a spreadsheet. `export` defused
    them, `compare --csv` did not. Numbers, negative ones too, stay numbers."""
    evil = "=cmd|' /C calc'!A0"
    for k, (name, opt) in enumerate([(evil, "@SUM(1+1)"), ("plain", "adam")]):
        with Recorder(tmp_path / f"r{k}.h5", name=name, config={evil: opt, "shift": -0.5 * (k + 1)}) as rec:
            for step in range(30):
                rec.log({"train/loss": 1.0 / (1 + step), f"+{k}": float(step)}, step=step)
    code, out, _ = _run(capsys, tmp_path, "--csv", "--all-config")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    cells = [c for row in rows for c in row]
    assert not any(c.startswith(("=", "+", "@")) for c in cells), out
    assert "'" + evil in rows[0] and "'" + evil in cells[len(rows[0]):]
    assert "'@SUM(1+1)" in cells
    shift = rows[0].index("shift")
    assert sorted(float(r[shift]) for r in rows[1:]) == [-1.0, -0.5]   # numbers, not text
