"""PyTorch Lightning: ``Trainer(logger=TrainspectLogger("runs/x.h5"))`` records the run.

A real ``lightning.pytorch.loggers.Logger``, usable alone or beside others (``logger=[tb,
TrainspectLogger(...)]``). Without any call from the user it

- watches the LightningModule and its optimizer when ``fit`` starts: Lightning hands every
  logger the module in ``log_graph`` once the strategy has set up the optimizers (with several
  optimizers, a GAN, the per-step records follow the first; one warning says so);
- stores the hyperparameters (``save_hyperparameters()``) as the run's config;
- records ``self.log`` metrics at Lightning's own step (the optimizer steps taken), so the
  gradient records of optimizer step k and the losses logged for it share step k, with
  ``accumulate_grad_batches`` too; ``val_loss`` (``_step``/``_epoch`` variants included) is
  the validation loss;
- continues a run resumed with ``fit(ckpt_path=...)`` in the same file at the checkpoint's
  step (see ``recorder_session``); ``trainer.test()`` after ``fit`` goes to the same file;
- follows the recorder's ranks: every rank records (``<stem>.rank<k>.h5``), or only rank 0
  with ``all_ranks=False``.

Gradient norms are taken when backward ends, so with ``gradient_clip_val`` ``sys/grad_norm``
is the norm before clipping and ``sys/grad_norm_post_clip`` the one the step applied.
"""
from __future__ import annotations

import numbers
import warnings

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
except ImportError:  # the older package name of the same library
    try:
        from pytorch_lightning.callbacks import Callback
        from pytorch_lightning.loggers import Logger
    except ImportError as exc:
        raise ImportError("trainspect.integrations.lightning needs Lightning: pip install 'trainspect[lightning]'") \
            from exc

from trainspect.recorder.format import STATUS_CRASHED
from trainspect.recorder.recorder import RecorderWarning, _user_stacklevel

from .recorder_session import RecorderSession

__all__ = ["TrainspectLogger"]


def _logging_step(trainer) -> int:
    """The step Lightning passes to ``log_metrics`` during training: optimizer steps taken."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(step) if step is not None else int(trainer.global_step)


def _fitting(trainer) -> bool:
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    return str(getattr(fn, "value", fn)) == "fit"


def _batch_parts(batch) -> tuple:
    """A batch as the arguments a model would get: ``(x, y)`` -> x, y; ``{"x": ..}`` -> its values
    (the recorder's input statistics take the first floating-point tensor)."""
    if isinstance(batch, (list, tuple)):
        return tuple(batch)
    if isinstance(batch, dict):
        return tuple(batch.values())
    return (batch,)


class _StepSync(Callback):
    """Numbers the recorder's next optimizer step as Lightning does, once the checkpoint of a
    resumed fit is restored (after ``log_graph``, before the first batch); marks each training
    batch as the module's forward: Lightning calls ``training_step``, not the module, so the
    recorder's activation and input statistics would never start."""

    def __init__(self, logger: "TrainspectLogger"):
        self.logger = logger

    def on_train_start(self, trainer, pl_module) -> None:
        rec = self.logger._session.recorder
        if rec is not None:
            rec.set_step(_logging_step(trainer))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rec = self.logger._session.recorder
        if rec is not None:
            rec.begin_forward(*_batch_parts(batch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rec = self.logger._session.recorder
        if rec is not None:
            rec.end_forward()


class _DeferredRecorder:
    """``logger.experiment``: forwards to the Recorder, creating it at the first use."""

    def __init__(self, logger: "TrainspectLogger"):
        self._logger = logger

    def __getattr__(self, name):
        rec = self._logger._recorder()
        if rec is None:
            raise AttributeError(f"{name}: the trainspect run file could not be created")
        return getattr(rec, name)


class TrainspectLogger(Logger):
    """``TrainspectLogger(path, name=None, *, watch=True, all_ranks=True, **recorder_kwargs)``.

    ``recorder_kwargs`` go to :class:`trainspect.Recorder` (``stats_every``, ``roles``, ...).
    ``watch=False`` records only what ``self.log`` logs.
    """

    def __init__(self, path, name: str | None = None, *, watch: bool = True, all_ranks: bool = True,
                 **recorder_kwargs):
        super().__init__()
        self._session = RecorderSession(path, name=name, all_ranks=all_ranks, **recorder_kwargs)
        self._watch = bool(watch)
        self._hparams: dict = {}
        self._fitted = False            # a fit already ran with this logger
        self._warned_optimizers = False

    # ------------------------------------------------------------ Logger's identity
    @property
    def name(self) -> str:
        return self._session.name

    @property
    def version(self) -> str:
        # ModelCheckpoint saves to <save_dir>/<name>/<version>/checkpoints: runs/x/checkpoints
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._session.path.parent)

    @property
    def files(self) -> list:
        """The run files this logger wrote (``rec.path``: ``x-2.h5`` when ``x.h5`` held another run)."""
        return list(self._session.files)

    @property
    def experiment(self):
        """The run's :class:`trainspect.Recorder` (``logger.experiment.log({...})``), opened on
        first use. Lightning touches this property in its setup, before the hyperparameters
        are known, so it is a stand-in that opens the run file only when used."""
        return _DeferredRecorder(self)

    def _recorder(self):
        return self._session.open(self._hparams)

    # ------------------------------------------------------------ Logger's hooks
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        params = vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else params
        self._hparams.update(dict(params or {}))

    def log_graph(self, model, input_array=None) -> None:
        # Lightning calls this for every logger at the start of fit/validate/test, after the
        # strategy set up the optimizers and before a checkpoint's training state is restored.
        trainer = getattr(model, "_trainer", None)
        fitting = trainer is not None and _fitting(trainer)
        continuing = fitting and getattr(trainer, "ckpt_path", None) is not None
        if fitting and self._fitted:
            # Another fit with this logger: from a checkpoint it resumes the file, else it is a
            # new run (x-2.h5) rather than steps 0, 1, ... again in the first one.
            self._session.close()
        self._fitted = self._fitted or fitting
        rec = self._session.open(self._hparams, continuing=continuing)
        if rec is None or not (self._watch and fitting):
            return
        optimizers = list(getattr(trainer, "optimizers", None) or [])
        if len(optimizers) > 1 and not self._warned_optimizers:
            self._warned_optimizers = True
            warnings.warn(f"trainspect: the module has {len(optimizers)} optimizers; gradient and update records "
                          "follow the first one's steps", RecorderWarning,
                          stacklevel=_user_stacklevel(("lightning", "pytorch_lightning")))
        self._session.watch(model, optimizers[0] if optimizers else None)
        if not any(isinstance(cb, _StepSync) and cb.logger is self for cb in trainer.callbacks):
            trainer.callbacks.append(_StepSync(self))

    def log_metrics(self, metrics, step=None) -> None:
        rec = self._recorder()
        if rec is None:
            return
        values = {k: v for k, v in metrics.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        if values:
            rec.log(values, step=int(step) if step is not None else None)

    def save(self) -> None:
        pass   # the recorder's writer thread flushes on its own schedule; nothing to force per step

    def finalize(self, status: str) -> None:
        # Lightning says "success" after every fit/validate/test: the file stays open for the
        # next one (recorder_session); "failed": an exception ended the run.
        if status == "failed":
            self._session.close(STATUS_CRASHED)
        else:
            self._session.flush()

    def close(self) -> None:
        """Close the run file now (marked finished); without this it closes when the script exits."""
        self._session.close()
