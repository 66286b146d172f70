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
