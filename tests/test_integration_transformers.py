"""TrainspectCallback on the real Hugging Face Trainer (CPU): a GPT-2 of 2 layers built from a
config (no download), a few steps with clipping, accumulation, evaluation and a resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from trainspect.analysis import open_run  # noqa: E402
from trainspect.analysis.vocab import loss_roles  # noqa: E402
from trainspect.app.cli import main  # noqa: E402
from trainspect.integrations.transformers import TrainspectCallback  # noqa: E402
from trainspect.recorder import format as fmt  # noqa: E402


class Tokens(torch.utils.data.Dataset):
    def __init__(self, seed, n=32, length=16, vocab=64):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def tiny_gpt2(seed):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def hf_trainer(tmp_path, seed, callback, max_steps, **kwargs):
    kwargs.setdefault("report_to", [])
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=max_steps, per_device_train_batch_size=4,
        per_device_eval_batch_size=8, learning_rate=1e-3, warmup_steps=2, logging_steps=1,
        use_cpu=True, disable_tqdm=True, seed=seed, **kwargs)
    return transformers.Trainer(model=tiny_gpt2(seed), args=args, train_dataset=Tokens(seed),
                                eval_dataset=Tokens(seed + 100, n=8), callbacks=[callback])


@pytest.mark.parametrize("seed", [0, 1])
def test_callback_records_the_trainers_logs_at_its_steps_and_watches_the_model(tmp_path, seed, capsys, monkeypatch):
    monkeypatch.setenv("TRAINSPECT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "hf_tb"))
    path = tmp_path / "x.h5"
    callback = TrainspectCallback(path, stats_every=2, dense_start=0)   # the schedule itself is checked
    trainer = hf_trainer(tmp_path, seed, callback, max_steps=6, gradient_accumulation_steps=2,
                         max_grad_norm=0.5, eval_strategy="steps", eval_steps=3, save_strategy="no",
                         report_to=["tensorboard"])      # HF's own TensorBoard logs beside ours
    trainer.train()
    trainer.evaluate()                 # after train(): the same run file goes on
    callback.close()                   # (else it closes when the script exits)
    assert callback.files == [path]
    with open_run(path) as run:
        assert run.meta["config"]["model_config"]["n_layer"] == 2
        assert run.meta["optimizer"]["type"] == "AdamW"
        assert any(p.name.startswith("transformer.h.1.") for p in run.params)
        steps = [1, 2, 3, 4, 5, 6]                                  # HF's global_step is 1-based
        assert run.scalar("train/loss").steps.tolist() == steps
        assert run.layer_stat("grad_norm").steps.tolist() == steps  # gradients share the Trainer's step
        assert run.layer_stat("act_mean").steps.tolist() == [2, 4, 6]      # the Trainer calls model(**inputs)
        assert run.scalar("eval/loss").steps.tolist() == [3, 6, 6]
        assert loss_roles(run.scalar_names(), run.meta.get(fmt.META_ROLES)) == {"train": "train/loss",
                                                                                "val": "eval/loss"}
        # the norm HF logs is the one before max_grad_norm clipped it: the recorder's agrees
        hf_norm = run.scalar("train/grad_norm").values
        assert hf_norm.min() > 0.5
        np.testing.assert_allclose(run.scalar(fmt.SYS_GRAD_NORM).values, hf_norm, rtol=1e-4)
        assert np.all(run.scalar(fmt.SYS_GRAD_NORM_POST_CLIP).values <= 0.5 * (1 + 1e-4))
        np.testing.assert_allclose(run.scalar(fmt.SYS_LR).values, run.scalar("train/learning_rate").values)
        assert run.status().state == "finished"
    # The Trainer's own TensorBoard logs, read directly: the same roles and stand-ins
    (logdir,) = {f.parent for f in (tmp_path / "hf_tb").rglob("*tfevents*")}
    capsys.readouterr()                # (the Trainer printed its logs)
    assert main(["diagnose", str(logdir), "--json"]) in (0, 1)
    out = json.loads(capsys.readouterr().out)
    assert out["read_from_logs"] == {fmt.SYS_LR: "train/learning_rate", fmt.SYS_GRAD_NORM: "train/grad_norm"}
    assert {g["instrument"] for g in out["not_checked"]} == {"gradients", "activations", "weight_snapshots",
                                                             "inputs", "loss"}
    assert any("too few for the loss-curve rules" in g["text"] for g in out["not_checked"])   # 6 steps


def test_resumed_training_continues_the_run_with_steps_unbroken(tmp_path):
    path = tmp_path / "x.h5"
    first_callback = TrainspectCallback(path)
    first = hf_trainer(tmp_path, 5, first_callback, max_steps=3, save_strategy="steps", save_steps=3)
    first.train()
    first_callback.close()                  # the first process ends
    callback = TrainspectCallback(path)     # a new process: new callback, trainer and model
    second = hf_trainer(tmp_path, 5, callback, max_steps=6, save_strategy="no")
    second.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))
    callback.close()
    assert callback.files == [path]         # the same file, a second writer session
    with open_run(path) as run:
        assert run.scalar("train/loss").steps.tolist() == [1, 2, 3, 4, 5, 6]
        assert run.layer_stat("grad_norm").steps.tolist() == [1, 2, 3, 4, 5, 6]
        assert run.status().state == "finished"
