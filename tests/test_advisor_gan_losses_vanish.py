"""A GAN whose generator and discriminator losses both fall to ~0 is not playing the game.

pytorch/examples' dcgan with ``label.fill_(fake_label)`` left in the generator's step (G learns to
help D): Loss_G and Loss_D both -> 0.001; the generator's file read "no problems found" and the
discriminator's "activation choice (85%)" for the reference Sigmoid + BCELoss (trial 15, F18).
The two networks are recorded in two files, as the README shows.
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _losses(i, n, rng, cooperative):
    t = i / n
    if cooperative:      # both fall together: G helps D
        return {"Loss_D": 1.39 * np.exp(-8 * t) + 0.002, "Loss_G": 0.69 * np.exp(-8 * t) + 0.001}
    return {"Loss_D": 1.2 - 0.8 * t + 0.1 * rng.standard_normal(),    # a healthy game: D gains, G's loss rises
            "Loss_G": 1.2 + 1.3 * t + 0.3 * rng.standard_normal()}


def _found(path):
    with open_run(path) as run:
        return {f.symptom: f for f in diagnose(run)}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cooperative", [True, False])
def test_two_files_of_one_launch_are_judged_together(tmp_path, seed, cooperative):
    rng = np.random.default_rng(seed)
    g_path, d_path = tmp_path / "gan-G.h5", tmp_path / "gan-D.h5"
    with Recorder(g_path) as rec_g, Recorder(d_path) as rec_d:
        for i in range(300):
            v = _losses(i, 300, rng, cooperative)
            rec_d.log({"Loss_D": float(v["Loss_D"]), "D_x": 0.9}, step=i)
            rec_g.log({"Loss_G": float(v["Loss_G"])}, step=i)
    for path in (g_path, d_path):
        f = _found(path).get("gan_losses_vanish")
        if not cooperative:
            assert f is None, f.title
            continue
        assert f is not None and f.severity == "warning"
        assert f.causes[0].id == "generator_helps_discriminator"
        assert "real label" in f.fixes[0].text
        other = "gan-D.h5" if path == g_path else "gan-G.h5"
        assert other in " ".join(e.text for e in f.evidence)


def test_one_file_with_both_losses_and_a_lone_side_without_its_partner(tmp_path):
    rng = np.random.default_rng(0)
    with Recorder(tmp_path / "both.h5") as rec:
        for i in range(300):
            rec.log({k: float(v) for k, v in _losses(i, 300, rng, True).items()}, step=i)
    assert "gan_losses_vanish" in _found(tmp_path / "both.h5")
    alone = tmp_path / "alone"
    alone.mkdir()
    with Recorder(alone / "d.h5") as rec:
        for i in range(300):
            rec.log({"Loss_D": float(_losses(i, 300, rng, True)["Loss_D"])}, step=i)
    assert "gan_losses_vanish" not in _found(alone / "d.h5")     # G's loss unknown: no judgement


def test_a_winning_discriminator_output_sigmoid_is_not_blamed_on_the_activation(tmp_path):
    """The DCGAN reference design (Sigmoid + BCELoss) saturates when D tells every sample apart."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.Tanh())
    D = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LeakyReLU(0.2), torch.nn.Linear(32, 1),
                            torch.nn.Sigmoid(), torch.nn.Flatten(0))
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999))
    bce = torch.nn.BCELoss()
    real_data = torch.rand(512, 16) * 0.2 + 0.7
    with Recorder(tmp_path / "G.h5", stats_every=5) as rec_g, Recorder(tmp_path / "D.h5", stats_every=5) as rec_d:
        rec_g.watch(G, opt_g)
        rec_d.watch(D, opt_d)
        for i in range(300):
            real = real_data[torch.randint(0, 512, (64,))]
            D.zero_grad()
            err_d = bce(D(real), torch.ones(64)) + bce(D(G(torch.randn(64, 8)).detach()), torch.zeros(64))
            err_d.backward()
            opt_d.step()
            G.zero_grad()
            err_g = bce(D(G(torch.randn(64, 8))), torch.zeros(64))     # the bug: fake labels in G's step
            err_g.backward()
            opt_g.step()
            rec_d.log({"Loss_D": err_d}, step=i)
            rec_g.log({"Loss_G": err_g}, step=i)
    found = _found(tmp_path / "D.h5")
    assert "gan_losses_vanish" in found
    sat = found["saturated_activations"]
    assert sat.causes[0].id == "generator_helps_discriminator", [(c.id, c.why) for c in sat.causes]
    assert all(c.confidence < 0.5 for c in sat.causes if c.id == "activation_choice")
