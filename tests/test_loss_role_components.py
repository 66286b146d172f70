"""Without a conventional training-loss name, the first metric with "loss" in its name was judged
as the training loss: a VAE logging ``train/kl_loss`` before ``train/recon_loss`` read "ERROR
divergence: train/kl_loss diverged" (the KL term rises early by design), and swapping the two
keys made the run healthy. Terms meant to rise or be balanced are never taken for it."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose
from trainspect.analysis.vocab import loss_roles
from trainspect.recorder import Recorder


@pytest.mark.parametrize("names, train", [
    (["train/kl_loss", "train/recon_loss"], "train/recon_loss"),
    (["kld_loss", "bce_loss"], "bce_loss"),
    (["loss_scale", "ce_loss"], "ce_loss"),            # AMP's loss scale rises by design
    (["aux_loss", "reg_loss", "main_loss"], "main_loss"),
    (["vq/commit_loss", "vq/recon_loss"], "vq/recon_loss"),
])
def test_a_loss_term_is_not_taken_for_the_training_loss(names, train):
    assert loss_roles(names)["train"] == train


def test_a_conventional_name_is_still_taken_whatever_its_neighbours():
    assert loss_roles(["kl_loss", "loss"])["train"] == "loss"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_vae_logging_its_rising_kl_term_first_is_not_diverged(tmp_path, seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(400)
    kl = 0.05 + 3 * (1 - np.exp(-steps / 60)) + 0.05 * rng.standard_normal(400)    # rises, then settles
    recon = 60 * np.exp(-steps / 150) + 20 + rng.standard_normal(400)
    with Recorder(tmp_path / "r.h5") as rec:
        for k, r in zip(kl, recon):
            rec.log({"train/kl_loss": float(k), "train/recon_loss": float(r)})
    assert [f.symptom for f in diagnose(tmp_path / "r.h5") if f.severity != "info"] == []


@pytest.mark.parametrize("names, val", [
    (["train/nll_loss", "val/nll_loss"], "val/nll_loss"),      # overfitting went unchecked
    (["loss", "eval/ce_loss"], "eval/ce_loss"),
    (["loss", "valid_mse_loss"], "valid_mse_loss"),
])
def test_a_validation_metric_named_with_loss_is_the_validation_loss(names, val):
    assert loss_roles(names)["val"] == val


def test_a_validation_loss_term_is_not_the_validation_loss():
    assert "val" not in loss_roles(["loss", "val/kl_loss"])
