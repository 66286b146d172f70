"""`trainspect import` of a TensorBoard log with sub-folders keeps each folder's series apart.

``add_scalars("loss", {"train": ..., "val": ...})`` writes the sub-folders loss_train and
loss_val, both with the tag "loss": merged by tag, the val values replaced the train ones
without a word ("110 values" of 210 logged) and the advisor read the wrong curve.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.recorder.importers import convert

pytest.importorskip("tensorboard")
SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter


@pytest.mark.parametrize("seed", [0, 1])
def test_add_scalars_series_stay_apart(tmp_path, seed):
    rng = np.random.default_rng(seed)
    train, val = rng.uniform(1, 2, 100), rng.uniform(2, 3, 100)
    w = SummaryWriter(str(tmp_path / "tb"))
    for step in range(100):
        w.add_scalar("Loss/train", float(train[step]), step)
        w.add_scalars("loss", {"train": float(train[step]), "val": float(val[step])}, step)
    w.close()
    summary = convert(tmp_path / "tb", tmp_path / "run.h5")
    assert summary.points == {"Loss/train": 100, "loss/train": 100, "loss/val": 100}
    with open_run(tmp_path / "run.h5") as run:
        np.testing.assert_allclose(run.scalar("loss/train").values, train, rtol=1e-6)
        np.testing.assert_allclose(run.scalar("loss/val").values, val, rtol=1e-6)


def test_a_log_in_one_sub_folder_keeps_its_tags(tmp_path):
    w = SummaryWriter(str(tmp_path / "logs" / "lightning_logs" / "version_0"))
    for step in range(20):
        w.add_scalar("train_loss", 1.0 / (step + 1), step)
    w.close()
    summary = convert(tmp_path / "logs", tmp_path / "run.h5")
    assert summary.points == {"train_loss": 20}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_densest_of_two_conventional_loss_names_is_judged(tmp_path, seed):
    """`Loss/train` every step (diverging from step 300) and add_scalars' `loss/train` every 10
    steps (before the divergence only): the role went to `loss/train` by name order, and the
    imported run read "no problems found"."""
    from trainspect.analysis import diagnose
    rng = np.random.default_rng(seed)
    w = SummaryWriter(str(tmp_path / "tb"))
    for step in range(400):
        level = 2.3 * np.exp(-step / 60) + 0.1 if step < 300 else 0.1 + 0.05 * (step - 300)
        w.add_scalar("Loss/train", float(level * rng.lognormal(0, 0.05)), step)
        if step % 10 == 0 and step < 300:
            w.add_scalars("loss", {"train": float(level)}, step)
    w.close()
    convert(tmp_path / "tb", tmp_path / "run.h5")
    with open_run(tmp_path / "run.h5") as run:
        assert run.loss_roles()["train"] == "Loss/train"
        assert "divergence" in [f.symptom for f in diagnose(run)]
