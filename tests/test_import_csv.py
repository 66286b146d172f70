"""`trainspect import` of CSV logs (long and wide layouts) into run files the advisor reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.app.cli import main
from trainspect.recorder.importers import convert


def _diverging_loss(seed: int, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.concatenate([np.linspace(2.0, 1.0, n // 2), np.geomspace(1.0, 1e4, n - n // 2)])
    return base * (1 + 0.02 * rng.standard_normal(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_csv_roundtrip_and_advisor_sees_divergence(tmp_path, seed):
    loss = _diverging_loss(seed)
    src = tmp_path / "log.csv"
    lines = ["metric,step,value"]
    lines += [f"train/loss,{s},{float(v)!r}" for s, v in enumerate(loss)]
    lines += [f"lr,{s},0.1" for s in range(0, len(loss), 10)]
    src.write_text("\n".join(lines) + "\n")
    summary = convert(src, tmp_path / "run.h5")
    assert summary.layout == "long" and summary.points == {"train/loss": len(loss), "lr": len(loss[::10])}
    with open_run(tmp_path / "run.h5") as r:
        s = r.scalar("train/loss")
        np.testing.assert_array_equal(s.steps, np.arange(len(loss)))
        np.testing.assert_allclose(s.values, loss)
        assert "divergence" in {f.symptom for f in diagnose(r)}


def test_wide_csv_with_gaps_keeps_each_metric_at_its_own_steps(tmp_path):
    # Lightning's CSVLogger layout: train rows and val rows interleaved with empty cells.
    src = tmp_path / "metrics.csv"
    src.write_text("epoch,step,train_loss,val_loss\n0,0,2.5,\n0,1,2.0,\n0,1,,2.2\n1,2,1.5,\n1,3,1.25,\n1,3,,1.9\n")
    summary = convert(src, tmp_path / "run.h5")
    assert summary.layout == "wide"
    with open_run(tmp_path / "run.h5") as r:
        assert list(r.scalar("train_loss").steps) == [0, 1, 2, 3]
        assert list(r.scalar("val_loss").steps) == [1, 3]
        np.testing.assert_allclose(r.scalar("val_loss").values, [2.2, 1.9])


def test_unreadable_rows_are_counted_not_fatal(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text("step,metric,value\n0,loss,1.0\nx,loss,2\n1,loss,oops\n2,loss,0.5\n")
    summary = convert(src, tmp_path / "run.h5")
    assert summary.points == {"loss": 2} and summary.skipped_rows == 2


@pytest.mark.parametrize("text, message", [
    ("", "empty CSV"),
    ("a,b\n1,2\n", "no step column"),
    ("step\n1\n2\n", "no metric columns"),
    ("step,loss\n0,\n1,\n", "no numeric values"),
])
def test_bad_csv_is_a_clear_error_exit_2(tmp_path, capsys, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    assert main(["import", str(src), "-o", str(tmp_path / "out.h5")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()


def test_cli_import_refuses_to_overwrite_without_force(tmp_path, capsys):
    src = tmp_path / "log.csv"
    src.write_text("step,loss\n0,1.0\n1,0.5\n")
    out = tmp_path / "log.h5"
    assert main(["import", str(src), "-q"]) == 0
    assert "2 values of 1 metric from" in capsys.readouterr().out
    assert main(["import", str(src), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    src.write_text("step,loss\n0,3.0\n")
    assert main(["import", str(src), "-q", "--force"]) == 0
    with open_run(out) as r:
        assert list(r.scalar("loss").values) == [3.0]


def test_a_lightning_csv_loggers_hyperparameters_and_version_come_along(tmp_path):
    """Lightning's CSVLogger writes metrics.csv and, beside it, hparams.yaml: the settings become
    the run's config and the version folder its name (every CSVLogger run is a "metrics")."""
    pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger
    runs = []
    for lr in (0.1, 0.01):
        logger = CSVLogger(str(tmp_path), name="sweep")
        logger.log_hyperparams({"lr": lr, "model": {"hidden": 64}})
        for step in range(20):
            logger.log_metrics({"train_loss": lr / (step + 1)}, step=step)
        logger.finalize("success")
        runs.append(tmp_path / "sweep" / f"version_{len(runs)}")
    for k, (run_dir, lr) in enumerate(zip(runs, (0.1, 0.01))):
        out = tmp_path / f"v{k}.h5"
        assert main(["import", str(run_dir / "metrics.csv"), "-o", str(out), "-q"]) == 0
        with open_run(out) as run:
            assert run.name == f"version_{k}"
            assert run.config["lr"] == pytest.approx(lr) and run.config["model"] == {"hidden": 64}
            assert len(run.scalar("train_loss")) == 20


def test_an_unsafe_or_broken_hparams_yaml_leaves_the_values_importable(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "metrics.csv").write_text("step,train_loss\n0,1.0\n1,0.5\n")
    (tmp_path / "hparams.yaml").write_text("opt: !!python/object/apply:os.system ['echo pwned']\n")
    out = tmp_path / "r.h5"
    assert main(["import", str(tmp_path / "metrics.csv"), "-o", str(out), "-q"]) == 0
    with open_run(out) as run:
        assert "opt" not in run.config and len(run.scalar("train_loss")) == 2


def test_a_yaml_billion_laughs_beside_metrics_csv_imports_with_its_config_cut(tmp_path):
    """~900 bytes of YAML aliases: lists of 9 lists, 10 deep, 3.5e9 values once walked as a tree.
    The loader shares them; the config copy walked them all: minutes and 2 GB, then killed."""
    pytest.importorskip("yaml")
    from trainspect.recorder.metadata import CUT_NOTE, MAX_VALUES

    folder = tmp_path / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,train_loss\n" + "".join(f"{s},{1.0 / (1 + s)}\n" for s in range(30)))
    names = "abcdefghij"
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip(names, names[1:])]
    (folder / "hparams.yaml").write_text("\n".join(lines) + "\nlr: 0.01\n")
    out = tmp_path / "run.h5"
    assert main(["import", str(folder / "metrics.csv"), "-o", str(out), "-q"]) == 0
    with open_run(out) as run:
        assert len(run.scalar("train_loss")) == 30
        text = json.dumps(run.config)
    assert CUT_NOTE in text and text.count('"lol"') < MAX_VALUES
    assert json.loads(text)["lr"] == 0.01      # the plain values beside the deep ones are kept


@pytest.mark.parametrize("content, message", [
    ("step,loss\n0," + "1" * 200_000 + "\n1,2\n", "line 2: not a CSV file"),
    ('step,loss\n0,"1\n' + "2,3\n" * 50_000, "a quote that is never closed"),
    ("step,loss\n0,caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
    ("step,loss\n0,1\n".encode("utf-16"), "not UTF-8 text"),
])
def test_a_file_that_is_no_readable_csv_is_named_not_a_traceback(tmp_path, capsys, content, message):
    src = tmp_path / "log.csv"
    (src.write_bytes if isinstance(content, bytes) else src.write_text)(content)
    assert main(["import", str(src), "-o", str(tmp_path / "r.h5"), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and message in err and "Traceback" not in err


def test_a_failed_import_over_an_existing_run_leaves_it_as_it_was(tmp_path, capsys):
    """--force removed the old run file first: an import that then failed lost it."""
    good, bad, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "run.h5"
    good.write_text("step,loss\n0,1\n1,0.5\n")
    bad.write_text("garbage\n")
    assert main(["import", str(good), "-o", str(out), "-q"]) == 0
    before = out.read_bytes()
    assert main(["import", str(bad), "-o", str(out), "-q", "--force"]) == 2
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_force_does_not_replace_what_is_not_a_regular_file(tmp_path, capsys):
    import os

    src = tmp_path / "a.csv"
    src.write_text("step,loss\n0,1\n")
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    assert main(["import", str(src), "-o", str(fifo), "-q", "--force"]) == 2
    assert "not a regular file" in capsys.readouterr().err and fifo.is_fifo()


def test_values_the_run_file_cannot_hold_are_warned_in_one_line_each(tmp_path, capsys):
    src = tmp_path / "log.csv"
    src.write_text("step,loss,sys/lr," + "x" * 3000 + "\n0,1,0.1,2\n1,0.5,0.1,2\n")
    assert main(["import", str(src), "-o", str(tmp_path / "r.h5"), "-q"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("trainspect import: warning: ") and len(line) < 400 for line in err), err
    assert any("'sys/lr'" in line and "reserved" in line for line in err)
    assert any("longer than" in line for line in err)


def test_cells_that_are_no_number_are_counted_not_dropped_in_silence(tmp_path, capsys):
    src = tmp_path / "log.csv"
    src.write_text("step,loss,acc\n0,1.0,abc\n1,0.5,\n2,0.25,TRUE\n3,0.1,0.9\n")   # empty: a gap, not an error
    assert main(["import", str(src), "-o", str(tmp_path / "r.h5"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "5 values of 2 metrics" in out and "2 cells that are no number left out" in out


def test_columns_of_one_name_stay_apart(tmp_path):
    """A header step,loss,loss,loss merged three columns into one series with three values a step,
    which the advisor then judged as one loss curve (attack round 4, B7)."""
    src = tmp_path / "dup.csv"
    src.write_text("step,loss,loss,loss,loss-2\n0,0,0,0,9\n1,1,2,3,9\n2,2,4,6,9\n")
    convert(src, tmp_path / "dup.h5")
    with open_run(tmp_path / "dup.h5") as run:
        got = {n: run.scalar(n).values.tolist() for n in run.scalar_names()}
    assert got == {"loss": [0, 1, 2], "loss-2": [9, 9, 9], "loss-3": [0, 2, 4], "loss-4": [0, 3, 6]}


def test_a_refused_metric_is_not_counted_as_written(tmp_path):
    """A column named with a NUL is refused by the recorder (warned): the summary said
    "1 value of 1 metric" for a run holding none (attack round 4, B8)."""
    src = tmp_path / "nul.csv"
    src.write_bytes(b"step,lo\x00ss,loss\n0,1,2\n1,1,3\n")
    with pytest.warns(UserWarning, match="NUL"):
        summary = convert(src, tmp_path / "nul.h5")
    assert summary.points == {"loss": 2}
