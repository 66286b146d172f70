"""TrainspectLogger on real Lightning training (CPU, tiny MLP): watching, hparams, roles,
accumulation, bf16-mixed, pre-clip gradient norms, TensorBoard beside it, resuming from a
checkpoint with steps unbroken."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
pytest.importorskip("tensorboard")     # TensorBoardLogger beside ours

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from trainspect.analysis import open_run  # noqa: E402
from trainspect.analysis.vocab import loss_roles  # noqa: E402
from trainspect.integrations.lightning import TrainspectLogger  # noqa: E402
from trainspect.recorder import format as fmt  # noqa: E402
from trainspect.recorder.importers.tb_import import read_tensorboard  # noqa: E402


class Regressor(L.LightningModule):
    def __init__(self, hidden: int = 16, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).float(), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x).float(), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self.net(x).float(), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data(seed, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g) * 3
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8)


class PreClipNorms(L.Callback):
    """The global gradient norm Lightning's own hook sees before it clips."""

    def __init__(self):
        self.norms = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = [p.grad.detach().float() for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))


def trainer(tmp_path, loggers, max_steps, callbacks=(), devices=1, **kwargs):
    return L.Trainer(max_steps=max_steps, logger=loggers, callbacks=list(callbacks), accelerator="cpu",
                     devices=devices, log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, default_root_dir=tmp_path, **kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_logger_records_a_clipped_accumulated_bf16_fit(tmp_path, seed):
    torch.manual_seed(seed)
    path = tmp_path / "runs" / "x.h5"
    pre = PreClipNorms()
    tb = L.loggers.TensorBoardLogger(tmp_path / "tb")      # beside another logger
    logger = TrainspectLogger(path, stats_every=5, dense_start=0)   # the schedule itself is checked
    t = trainer(tmp_path, [logger, tb], max_steps=6, callbacks=[pre], accumulate_grad_batches=2,
                precision="bf16-mixed", gradient_clip_val=0.05, val_check_interval=4)
    module = Regressor(hidden=12, lr=0.05)
    t.fit(module, data(seed), data(seed + 100, 16))
    t.test(module, data(seed + 200, 16))          # after fit: the same run file goes on
    logger.close()                                 # (else it closes when the script exits)
    assert logger.files == [path]
    with open_run(path) as run:
        assert run.meta["config"]["hidden"] == 12 and run.meta["config"]["lr"] == 0.05
        assert run.meta["optimizer"]["type"] == "SGD"
        assert [p.name for p in run.params] == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
        steps = list(range(6))
        assert run.layer_stat("grad_norm").steps.tolist() == steps      # one record per optimizer step
        # training_step calls self.net, never the module: activations and inputs are measured anyway
        assert run.layer_stat("act_frac_nonpos").steps.tolist() == [0, 5]    # stats_every=5
        assert run.scalar(fmt.SYS_INPUT_STD).steps.tolist() == [0, 5]
        assert run.scalar("train_loss_step").steps.tolist() == steps    # ... sharing the logged step
        roles = loss_roles(run.scalar_names(), run.meta.get(fmt.META_ROLES))
        assert roles["val"].startswith("val_loss") and roles["train"].startswith("train_loss")
        assert len(run.scalar("val_loss").steps) >= 1
        # sys/grad_norm is the norm before gradient_clip_val cut it, the one Lightning's hook saw
        np.testing.assert_allclose(run.scalar(fmt.SYS_GRAD_NORM).values, pre.norms, rtol=1e-4)
        assert min(pre.norms) > 0.05
        assert np.all(run.scalar(fmt.SYS_GRAD_NORM_POST_CLIP).values <= 0.05 * (1 + 1e-4))
        assert run.status().state == "finished"
        assert run.scalar("test_loss").steps.tolist() == [6]
        recorded = run.scalar("train_loss_step").values
    tb_steps, tb_values, _ = read_tensorboard(tmp_path / "tb")[0]["train_loss_step"]
    assert tb_steps.tolist() == steps                                      # both loggers saw the same
    np.testing.assert_allclose(tb_values, recorded, rtol=1e-6)


def test_resumed_fit_continues_the_run_with_steps_unbroken(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "x.h5"
    first_logger = TrainspectLogger(path)
    first = trainer(tmp_path, [first_logger], max_steps=4)
    first.fit(Regressor(), data(3))
    ckpt = tmp_path / "after4.ckpt"
    first.save_checkpoint(ckpt)
    first_logger.close()                     # the first process ends
    # a new process builds everything anew: a new module, trainer and logger on the same path
    logger = TrainspectLogger(path)
    second = trainer(tmp_path, [logger], max_steps=8)
    second.fit(Regressor(), data(3), ckpt_path=ckpt)
    logger.close()
    assert logger.files == [path]            # the same file, a second writer session
    with open_run(path) as run:
        assert run.scalar("train_loss_step").steps.tolist() == list(range(8))
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(8))
        assert run.status().state == "finished"


@pytest.mark.slow
def test_ranks_of_a_ddp_fit(tmp_path):
    """Two CPU processes (ddp_spawn, gloo) with two loggers: by default every rank writes its own
    file; with all_ranks=False rank 0 alone."""
    every, only0 = tmp_path / "x.h5", tmp_path / "y.h5"
    t = trainer(tmp_path, [TrainspectLogger(every), TrainspectLogger(only0, all_ranks=False)], max_steps=3,
                strategy="ddp_spawn", devices=2)
    t.fit(Regressor(), data(5))
    for path, rank in ((every, 0), (tmp_path / "x.rank1.h5", 1), (only0, 0)):
        with open_run(path) as run:
            assert run.meta["distributed"]["rank"] == rank and run.meta["distributed"]["world_size"] == 2
            assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]
            assert run.scalar("train_loss_step").steps.tolist() == [0, 1, 2]
    assert not (tmp_path / "y.rank1.h5").exists()


def test_a_second_fit_from_scratch_is_a_new_run(tmp_path, recwarn):
    path = tmp_path / "x.h5"
    logger = TrainspectLogger(path)
    for seed in (6, 7):                        # the same logger, two fits without a checkpoint
        trainer(tmp_path, [logger], max_steps=2).fit(Regressor(), data(seed))
    logger.close()
    assert logger.files == [path, tmp_path / "x-2.h5"]
    for f in logger.files:
        with open_run(f) as run:
            assert run.scalar("train_loss_step").steps.tolist() == [0, 1]
            assert run.layer_stat("grad_norm").steps.tolist() == [0, 1]


class TwoOptimizers(Regressor):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt in self.optimizers():
            loss = nn.functional.mse_loss(self.net(x).float(), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("train_loss", loss)

    def configure_optimizers(self):
        return (torch.optim.SGD(self.net[0].parameters(), lr=0.01), torch.optim.SGD(self.net[2].parameters(), lr=0.01))


def test_the_two_optimizers_warning_names_the_users_line(tmp_path):
    """It pointed into lightning/pytorch/loggers/utilities.py (trial 14)."""
    with pytest.warns(UserWarning, match="2 optimizers") as caught:
        trainer(tmp_path, [TrainspectLogger(tmp_path / "two.h5")], 3).fit(TwoOptimizers(), data(0))
    w = next(w for w in caught if "2 optimizers" in str(w.message))
    assert w.filename == __file__, w.filename
