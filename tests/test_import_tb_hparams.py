"""Hyperparameters logged to TensorBoard (``SummaryWriter.add_hparams``, Lightning's
``log_hyperparams``) become the imported run's config: the Compare tab, ``trainspect compare``,
``info`` and reports then show a TensorBoard sweep's settings as TensorBoard's HParams table does."""
import pytest

pytest.importorskip("tensorboard")

from trainspect.analysis import open_run
from trainspect.app.tensorboard_runs import as_run_file
from trainspect.recorder.importers.tb_import import read_tensorboard


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPECT_CACHE_DIR", str(tmp_path / "cache"))


def _writer_run(logdir, lr, **hp):
    from torch.utils.tensorboard import SummaryWriter
    w = SummaryWriter(str(logdir))
    for step in range(20):
        w.add_scalar("Loss/train", 1.0 / (step + 1), step)
    w.add_hparams({"lr": lr, **hp}, {"hparam/accuracy": 0.9}, run_name=".")   # in the run's own folder
    w.close()


def test_add_hparams_values_of_every_kind_become_the_config(tmp_path):
    pytest.importorskip("torch")
    _writer_run(tmp_path / "runs" / "a", 3e-4, batch=32, optimizer="adamw", nesterov=True)
    with open_run(as_run_file(tmp_path / "runs" / "a")) as run:
        config = run.config
    assert config["lr"] == pytest.approx(3e-4)
    assert config["batch"] == 32 and config["optimizer"] == "adamw"
    assert type(config["batch"]) is int           # 32 (TensorBoard shows it so), not the protobuf's 32.0
    assert config["nesterov"] == 1      # torch's add_hparams writes a bool as the number 1.0, as TensorBoard shows it
    assert config["import_format"] == "tensorboard"
    hp = {}
    series, _, _ = read_tensorboard(tmp_path / "runs" / "a", hparams=hp)
    assert set(hp) == {"lr", "batch", "optimizer", "nesterov"}
    assert "Loss/train" in series and not any("session_start_info" in name for name in series)


def test_a_lightning_loggers_hyperparameters_become_the_config(tmp_path):
    pytest.importorskip("lightning")
    from lightning.pytorch.loggers import TensorBoardLogger
    logger = TensorBoardLogger(str(tmp_path), name="lightning_logs")
    logger.log_hyperparams({"lr": 0.01, "hidden": 128, "model": {"depth": 3}})
    for step in range(10):
        logger.log_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    with open_run(as_run_file(tmp_path / "lightning_logs" / "version_0")) as run:
        config = run.config
    assert config["lr"] == pytest.approx(0.01) and config["hidden"] == 128
    assert config["model/depth"] == 3           # Lightning flattens nested hyperparameters


def test_logs_without_hyperparameters_import_as_before(tmp_path):
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter
    w = SummaryWriter(str(tmp_path / "plain"))
    w.add_scalar("loss", 1.0, 0)
    w.close()
    with open_run(as_run_file(tmp_path / "plain")) as run:
        assert set(run.config) == {"imported_from", "import_format"}


def _sweep_with_default_sessions(root, lrs):
    """The add_hparams docs' sweep: one writer per setting, ``add_hparams`` with its default
    ``run_name``, which puts the hyperparameters in a ``time.time()`` sub-folder of each run."""
    from torch.utils.tensorboard import SummaryWriter
    for lr in lrs:
        w = SummaryWriter(str(root / f"lr_{lr}"))
        for step in range(20):
            w.add_scalar("Loss/train", lr / (step + 1), step)
        w.add_hparams({"lr": lr, "opt": "sgd"}, {"hparam/accuracy": 1 - lr})
        w.close()


def test_add_hparams_default_session_folders_join_their_run(tmp_path):
    pytest.importorskip("torch")
    from trainspect.app.run_paths import expand_runs
    from trainspect.app.tensorboard_runs import run_dirs
    root = tmp_path / "runs"
    _sweep_with_default_sessions(root, [0.1, 0.01])
    sessions = [d for d in root.rglob("*") if d.is_dir() and d.parent != root]
    assert len(sessions) == 2              # torch wrote one timestamped folder per run
    assert run_dirs(root) == [root / "lr_0.01", root / "lr_0.1"]   # the sessions are not runs of their own
    assert len(expand_runs([str(root)])) == 2
    with open_run(as_run_file(root / "lr_0.1")) as run:
        assert run.config["lr"] == pytest.approx(0.1) and run.config["opt"] == "sgd"
        names = run.metric_names()
        assert "Loss/train" in names
        assert "hparam/accuracy" in names     # the session's metric, under its own tag
        acc = run.scalar("hparam/accuracy")
        assert list(acc.steps) == [19] and acc.values[0] == pytest.approx(0.9)   # the run's result: at its end, not at step 0
        assert not any(n.startswith(sessions[0].name) for n in names)


def test_a_timestamp_named_run_without_a_parent_run_stays_a_run(tmp_path):
    """A sub-folder named like a timestamp under a folder with no event files of its own (a
    sweep named by launch time) is a run: only one inside a run joins it."""
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter
    from trainspect.app.tensorboard_runs import run_dirs
    root = tmp_path / "runs"
    for name in ("1733540000.5", "1733540100.25"):
        w = SummaryWriter(str(root / name))
        w.add_scalar("loss", 1.0, 0)
        w.add_hparams({"lr": 0.1}, {"hparam/acc": 0.5}, run_name=".")
        w.close()
    assert run_dirs(root) == [root / "1733540000.5", root / "1733540100.25"]


def test_a_whole_sweep_imported_at_once_puts_each_result_at_its_own_runs_end(tmp_path):
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter
    for name, steps in (("short", 10), ("long", 40)):
        w = SummaryWriter(str(tmp_path / name))
        for step in range(steps):
            w.add_scalar("loss", 1.0, step)
        w.add_hparams({"steps": steps}, {"hparam/acc": steps / 100})
        w.close()
    series, _, _ = read_tensorboard(tmp_path, recursive=True)
    assert list(series["short/hparam/acc"][0]) == [9] and list(series["long/hparam/acc"][0]) == [39]
    assert not any(name.split("/")[1][:1].isdigit() for name in series)   # no timestamp folders in the names


def test_the_hf_trainers_arguments_written_as_json_text_become_the_config(tmp_path, capsys):
    """The HF Trainer's TensorBoard callback writes its TrainingArguments as a text summary
    (add_text("args", args.to_json_string())): they are the run's config, under the name
    trainspect's own HF callback uses, so an HF sweep's TensorBoard logs compare by their settings."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import json

    from torch.utils.tensorboard import SummaryWriter
    from trainspect.app.cli import main
    args = transformers.TrainingArguments(str(tmp_path / "out"), learning_rate=3e-3, per_device_train_batch_size=16,
                                          report_to=[])
    w = SummaryWriter(str(tmp_path / "hf"))
    w.add_text("args", args.to_json_string())
    w.add_text("config", json.dumps({"model": {"depth": 4}, "data": "digits"}))   # a script's own JSON config
    w.add_text("notes", "lr sweep, second try")                 # prose: not a config
    w.add_text("layers", json.dumps([1, 2, 3]))                 # a JSON list: not a config either
    w.add_text("deep", "{" * 100_000)                           # hostile: unparseable, skipped without a word
    for step in range(10):
        w.add_scalar("train/loss", 1.0 / (step + 1), step)
    w.close()
    with open_run(as_run_file(tmp_path / "hf")) as run:
        config = run.config
    assert config["training_args"]["learning_rate"] == pytest.approx(3e-3)
    assert config["training_args"]["per_device_train_batch_size"] == 16
    assert config["config"] == {"model": {"depth": 4}, "data": "digits"}
    assert not {"notes", "layers", "deep", "args"} & set(config)
    assert main(["info", str(tmp_path / "hf")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("config:"))
    assert "training_args.learning_rate=0.003" in line           # nested settings as dotted keys
    assert "more (trainspect info RUN --config lists them)" in line   # ~150 keys: not all on one line


def test_run_details_show_nested_settings_one_a_row(tmp_path):
    pytest.importorskip("PySide6")
    from trainspect.app.gui.widgets.details import run_details_html
    from trainspect.recorder import Recorder
    with Recorder(tmp_path / "r.h5", config={"training_args": {"learning_rate": 3e-3, "seed": 42}, "lr": 0.1}) as rec:
        rec.log({"loss": 1.0}, step=0)
    with open_run(tmp_path / "r.h5") as run:
        page = run_details_html(run)
    assert "training_args.learning_rate</td><td>0.003" in page and "training_args.seed</td><td>42" in page
    assert "{" not in page.split("<h3>Config</h3>")[1].split("</table>")[0]     # no JSON cell
