"""Hugging Face ``Trainer``: ``Trainer(..., callbacks=[TrainspectCallback("runs/x.h5")])``.

A ``transformers.TrainerCallback`` that

- watches the model and the optimizer once the Trainer has built them (``on_train_begin``;
  accelerate's ``AcceleratedOptimizer`` is unwrapped by the recorder);
- records the Trainer's logs under the names its TensorBoard and W&B callbacks use:
  ``loss`` -> ``train/loss``, ``learning_rate`` -> ``train/learning_rate``, ``grad_norm`` ->
  ``train/grad_norm``, ``eval_loss`` -> ``eval/loss`` (the validation role);
- numbers records with the Trainer's ``global_step``, which is 1-based: the gradient records of
  the step that ``global_step`` N completes carry N, as does the loss the Trainer logs for it;
- continues a run resumed with ``train(resume_from_checkpoint=...)`` in the same file (see
  ``recorder_session``);
- follows the recorder's ranks: every rank records, or only rank 0 with ``all_ranks=False``.

Gradient norms are taken when backward ends, so ``sys/grad_norm`` is the norm before
``max_grad_norm`` clipping, the same number the Trainer logs as ``grad_norm``.
"""
from __future__ import annotations

import numbers

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError("trainspect.integrations.transformers needs transformers: "
                      "pip install 'trainspect[transformers]'") from exc

from .recorder_session import RecorderSession

__all__ = ["TrainspectCallback", "metric_name"]

# The Trainer's log keys that summarise a whole train() call instead of a step.
_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
_SPLIT_PREFIXES = ("eval_", "test_")


def metric_name(key: str) -> str:
    """The Trainer's log key as its TensorBoard callback names it: ``eval_loss`` -> ``eval/loss``."""
    for prefix in _SPLIT_PREFIXES:
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return f"train/{key}"


def _config(args, model) -> dict:
    config = {}
    if args is not None and hasattr(args, "to_sanitized_dict"):
        config["training_args"] = args.to_sanitized_dict()
    model_config = getattr(model, "config", None)
    if model_config is not None and hasattr(model_config, "to_dict"):
        config["model_config"] = model_config.to_dict()
    return config


class TrainspectCallback(TrainerCallback):
    """``TrainspectCallback(path, name=None, *, watch=True, all_ranks=True, **recorder_kwargs)``.

    ``recorder_kwargs`` go to :class:`trainspect.Recorder`; ``roles`` defaults to
    ``{"train": "train/loss", "val": "eval/loss"}``. ``watch=False`` records only the logs.
    """

    def __init__(self, path, name: str | None = None, *, watch: bool = True, all_ranks: bool = True,
                 **recorder_kwargs):
        recorder_kwargs.setdefault("roles", {"train": metric_name("loss"), "val": metric_name("eval_loss")})
        self._session = RecorderSession(path, name=name, all_ranks=all_ranks, **recorder_kwargs)
        self._watch = bool(watch)
        self._trained = False           # train() already ran with this callback

    @property
    def files(self) -> list:
        """The run files this callback wrote (``rec.path``: ``x-2.h5`` when ``x.h5`` held another run)."""
        return list(self._session.files)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self._trained:
            # train() again: from a checkpoint it resumes the file, else it is a new run (x-2.h5)
            self._session.close()
        self._trained = True
        # global_step > 0 here: the Trainer restored a checkpoint (resume_from_checkpoint)
        rec = self._session.open(_config(args, model), continuing=state.global_step > 0)
        if rec is not None and self._watch and model is not None:
            self._session.watch(model, optimizer)

    def on_step_begin(self, args, state, control, **kwargs):
        # Every optimizer step, so a step the Trainer counts but the optimizer skipped (fp16
        # overflow inside accelerate) cannot shift the records.
        rec = self._session.recorder
        if rec is not None:
            rec.set_step(state.global_step + 1)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        rec = self._session.open(_config(args, model))
        if rec is None or not logs:
            return
        if _SUMMARY_KEYS & set(logs) and "loss" not in logs:
            values = {f"summary/{k}": v for k, v in logs.items()}   # one point per train() call
        else:
            values = {metric_name(k): v for k, v in logs.items()}
        values = {k: v for k, v in values.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        if values:
            rec.log(values, step=int(state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        # Flushed, not closed: a trainer.evaluate() after train() goes to the same file
        # (recorder_session); it closes when the script exits, or on close().
        self._session.flush()

    def close(self) -> None:
        """Close the run file now (marked finished); without this it closes when the script exits."""
        self._session.close()
