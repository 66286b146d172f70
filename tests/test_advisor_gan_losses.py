"""A GAN's losses are not read as a loss curve that should fall.

pytorch/examples' dcgan logs Loss_D and Loss_G: the advisor took Loss_D for the training loss
("still falling: raise the LR 10x"), and a generator file's loss ("diverged: reduce the LR
10x") where the generator's loss rose as its discriminator learned, on a healthy GAN.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.analysis.advisor.coverage import coverage
from trainspect.analysis.vocab import is_adversarial_loss, loss_roles
from trainspect.recorder import Recorder


@pytest.mark.parametrize("name", ["Loss_G", "Loss_D", "errG", "errD", "g_loss", "d_loss", "gen_loss",
                                  "loss/discriminator", "critic_loss", "lossD", "G_loss", "loss_D_real"])
def test_gan_loss_names(name):
    assert is_adversarial_loss(name)


@pytest.mark.parametrize("name", ["loss", "train/loss", "val_loss", "adv_loss", "recon_loss", "dice_loss",
                                  "edge_loss", "D_x", "grad_norm", "kld_loss"])
def test_other_names(name):
    assert not is_adversarial_loss(name)


def _gan_run(path, seed, names):
    rng = np.random.default_rng(seed)
    with Recorder(path) as rec:
        for i in range(300):
            values = {"Loss_G": 1.2 + 1.3 * i / 300 + 0.3 * rng.standard_normal(),
                      "Loss_D": 1.2 - 0.8 * i / 300 + 0.1 * rng.standard_normal(), "D_x": 0.5 + 0.3 * i / 300}
            rec.log({k: float(v) for k, v in values.items() if k in names}, step=i)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("names", [("Loss_D", "Loss_G", "D_x"), ("Loss_G",)])
def test_a_healthy_gan_gets_no_loss_curve_advice(tmp_path, seed, names):
    path = tmp_path / "gan.h5"
    _gan_run(path, seed, names)
    with open_run(path) as run:
        assert run.loss_roles() == {}
        findings = diagnose(run)
    assert not [f for f in findings if f.severity != "info" or "loss" in f.symptom or "convergence" in f.symptom]
    gap = next(g for g in coverage(path).gaps if g.instrument == "loss")
    assert "GAN losses here (" in gap.how and "Loss_G" in gap.how


def test_a_declared_role_still_wins():
    assert loss_roles(["Loss_G", "Loss_D"], {"train": "Loss_G"}) == {"train": "Loss_G"}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_generator_whose_gradients_grow_as_a_line_is_not_told_to_zero_them(tmp_path, seed):
    """A generator's gradients steepen as its discriminator wins: the straight-line growth that
    reads "zero_grad() missing" elsewhere (exit 1 on pytorch/examples' healthy dcgan)."""
    rng = np.random.default_rng(seed)
    for name, expect in (("loss_G", False), ("loss", True)):
        path = tmp_path / f"{name}.h5"
        with Recorder(path) as rec:
            for step in range(200):
                noise = float(np.exp(0.05 * rng.standard_normal()))
                rec.log({name: 0.8 + 0.02 * step * noise, "grad_norm": (10.0 + 0.5 * step) * noise})
        accumulating = [f for f in diagnose(path) if f.facts.get("accumulating")]
        assert bool(accumulating) is expect, name
