"""`trainspect info` and `trainspect export` on what nanoGPT's trial showed them wrong.

- watch() registers ``sys/input_mean`` ... for every model; a token-id (integer) input gives
  them no points. info counted them as recorded metrics and export wrote a header-only CSV
  file for each, listed in index.csv.
- A run imported from a CSV log has the import's wall times: info and the report said
  "duration: 0.1 s".
- info ends a long config with "… and N more": it sent the user to `compare --all-config`
  to see one run's config; `info RUN --config` prints it whole.
"""
from __future__ import annotations

import csv
import re
import time

from trainspect.analysis import open_run
from trainspect.app.cli import main
from trainspect.app.report.content import run_summary
from trainspect.app.report.csv_export import export_run_csv
from trainspect.recorder import Recorder
from trainspect.recorder.h5file import RunFileWriter

EMPTY = ["sys/input_mean", "sys/input_std", "val/acc"]   # registered, never given a point


def write_run_with_empty_metrics(path):
    w = RunFileWriter(path)
    w.start({"name": "tokens"})
    w.add_tags(["train/loss", "sys/input_mean", "sys/input_std", "sys/grad_norm", "val/acc"])
    steps = [s for s in range(10) for _ in range(2)]
    w.append_scalars(steps, [0, 3] * 10, [v for s in range(10) for v in (1.0 / (s + 1), 0.5)],
                     [time.time()] * len(steps))
    w.close(last_step=9)
    return path


def info(capsys, *args) -> str:
    assert main(["info", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_info_counts_and_lists_only_metrics_with_points(tmp_path, capsys):
    out = info(capsys, write_run_with_empty_metrics(tmp_path / "run.h5"))
    assert "metrics:    1 logged + 1 recorded by watch()\n" in out, out
    assert "train/loss" in out and not any(name in out for name in EMPTY), out


def test_export_writes_no_files_for_metrics_without_points(tmp_path, capsys):
    run = write_run_with_empty_metrics(tmp_path / "run.h5")
    assert main(["export", str(run), "--csv", str(tmp_path / "csv"), "-q"]) == 0
    assert capsys.readouterr().out.startswith("wrote 3 files")
    with open(tmp_path / "csv" / "index.csv", newline="") as fh:
        index = list(csv.DictReader(fh))
    assert [row["name"] for row in index] == ["train/loss", "sys/grad_norm"]
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["index.csv", "sys_grad_norm.csv", "train_loss.csv"]


def test_export_run_csv_writes_no_files_for_metrics_without_points(tmp_path):
    """The app's File > Export CSV calls export_run_csv itself: the same files as the CLI."""
    with open_run(write_run_with_empty_metrics(tmp_path / "run.h5")) as run:
        files = export_run_csv(run, tmp_path / "csv")
    assert sorted(p.name for p in files) == ["index.csv", "sys_grad_norm.csv", "train_loss.csv"]
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["index.csv", "sys_grad_norm.csv", "train_loss.csv"]


def import_csv_log(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("step,train_loss\n" + "".join(f"{s},{1.0 / (s + 1)}\n" for s in range(50)))
    assert main(["import", str(log), "-o", str(tmp_path / "imported.h5"), "-q"]) == 0
    capsys.readouterr()
    return tmp_path / "imported.h5"


def test_info_gives_no_duration_for_a_run_imported_from_csv(tmp_path, capsys):
    out = info(capsys, import_csv_log(tmp_path, capsys))
    assert "duration:   unknown (imported" in out, out
    recorded = info(capsys, write_run_with_empty_metrics(tmp_path / "run.h5"))
    assert re.search(r"^duration:   [0-9.]+ s$", recorded, re.M), recorded   # a recorded run: its writer's times


def test_report_gives_no_duration_for_a_run_imported_from_csv(tmp_path, capsys):
    """The report's run summary says what info says (it said the import's 0.1 s too)."""
    with open_run(import_csv_log(tmp_path, capsys)) as run:
        rows = dict(run_summary(run)[0])
    assert rows["duration"] == "unknown (imported: the log kept no times)", rows
    assert "started" not in rows                   # the import's time, too
    with open_run(write_run_with_empty_metrics(tmp_path / "run.h5")) as run:
        rows = dict(run_summary(run)[0])
    assert re.fullmatch(r"[0-9.]+ s", rows["duration"]), rows    # a recorded run: its writer's times


def test_info_config_prints_the_whole_config_one_key_a_line(tmp_path, capsys):
    config = {f"key{i}": i for i in range(20)}
    config["model"] = {"depth": 4, "act": "gelu"}
    config["note"] = "two\nlines"
    for name in ("a", "b"):
        with Recorder(tmp_path / f"{name}.h5", config=config) as rec:
            rec.log({"train/loss": 1.0}, step=0)
    summary = info(capsys, tmp_path / "a.h5")
    assert "… and 7 more (trainspect info RUN --config lists them)" in summary, summary
    assert "--all-config" not in summary
    lines = info(capsys, tmp_path / "a.h5", "--config").splitlines()
    assert lines == [f"key{i}={i}" for i in range(20)] + ["model.depth=4", "model.act=gelu", "note=two\\nlines"]
    both = info(capsys, tmp_path / "a.h5", tmp_path / "b.h5", "--config").splitlines()
    assert both[0].startswith("run:        a  (") and both[1] == "key0=0" and both[25].startswith("run:        b  (")


def test_a_negative_zero_loss_prints_as_zero(tmp_path, capsys):
    with Recorder(tmp_path / "r.h5") as rec:      # cross_entropy over one logit is -0.0 (pytorch/examples' DDP)
        for step in range(3):
            rec.log({"train/loss": -0.0}, step=step)
    out = info(capsys, tmp_path / "r.h5")
    assert re.search(r"train/loss\s+3 points\s+last 0\b", out) and "-0" not in out



def test_a_tensorboard_logs_duration_is_its_events_time_span(tmp_path, capsys):
    """A TensorBoard event carries its wall time: the run took what its events span, not the import's 0.1 s."""
    import pytest

    SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter
    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(10):
        w.add_scalar("train_loss", 2.0 - 0.1 * s, s, walltime=1.7e9 + 30.0 * s)
    w.close()
    assert main(["import", str(tmp_path / "tb"), "-o", str(tmp_path / "tb.h5"), "-q"]) == 0
    capsys.readouterr()
    assert "duration:   4m 30s (the log's times)" in info(capsys, tmp_path / "tb.h5")


def test_the_report_counts_metrics_as_info_does(tmp_path, capsys):
    """The report's run table said "11 recorded by watch()" where info said 7: it counted
    watch()'s input statistics of token ids, which have no points."""
    with open_run(write_run_with_empty_metrics(tmp_path / "run.h5")) as run:
        rows = dict(run_summary(run)[0])
    assert rows["metrics"] == "1 logged, 1 recorded by watch()"
