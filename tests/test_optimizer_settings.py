"""The optimizer settings info, the report and the app show are those the param groups used.

nanoGPT builds AdamW from two groups (weight decay 0.1 for matrices, 0.0 for the rest) and
does not pass weight_decay itself: the run was shown with AdamW's default 0.01. A scheduler's
warm-up had the groups at lr 0 when watch() read them: the base LR (initial_lr) is shown.
"""
from __future__ import annotations

import torch
from trainspect.analysis.optimizer_settings import optimizer_settings
from trainspect.app.cli import main
from trainspect.recorder import Recorder
from trainspect.recorder.metadata import optimizer_meta


def _nanogpt_optimizer():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95))
    return model, opt


def test_per_group_settings_are_shown_per_group():
    _, opt = _nanogpt_optimizer()
    settings = dict(optimizer_settings(optimizer_meta(opt)))
    assert settings["weight_decay"] == "0.1 | 0 (per group)"
    assert settings["lr"] == "0.0006" and settings["betas"] == "[0.9, 0.95]"


def test_a_warm_up_shows_the_base_lr():
    _, opt = _nanogpt_optimizer()
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step / 100)   # groups at lr 0 now
    assert opt.param_groups[0]["lr"] == 0.0
    assert dict(optimizer_settings(optimizer_meta(opt)))["lr"] == "0.0006"


def test_info_prints_the_groups_settings(tmp_path, capsys):
    model, opt = _nanogpt_optimizer()
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
    assert main(["info", str(tmp_path / "run.h5")]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("optimizer:"))
    assert "weight_decay=0.1 | 0 (per group)" in line and "0.01" not in line


def test_odd_metadata_falls_back_to_the_defaults():
    meta = {"type": "SGD", "hyperparameters": {"lr": 0.001, "momentum": 0.9}, "param_groups": 1}
    assert optimizer_settings(meta) == [("lr", "0.001"), ("momentum", "0.9")]
    assert optimizer_settings(None) == [] and optimizer_settings({"param_groups": ["x"]}) == []
