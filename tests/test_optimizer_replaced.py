"""A script that makes a new optimizer part-way (the second phase of fine-tuning: unfreeze the
backbone, new optimizer with a lower learning rate). The recorder kept its hooks on the old
one: from the switch on every log(step=None) landed on one step and nothing per layer was
recorded. Now an optimizer that steps every watched parameter in an iteration where the watched
one did not step takes its place; optimizers that share the work (a GAN's, Muon beside AdamW)
do not."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS, SWITCH = 12, 5


def batches(seed):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "grad-scaler"])
def test_a_new_optimizer_for_the_second_phase_is_recorded(tmp_path, seed, scaled):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    model[0].requires_grad_(False)                      # phase 1: the head only
    opt = torch.optim.Adam(model[2].parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4) if scaled else None
    data, norms = batches(seed), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "ft.h5", stats_every=1) as rec:
            rec.watch(model, opt)
            for step in range(STEPS):
                if step == SWITCH:                      # phase 2: everything, a new optimizer
                    model.requires_grad_(True)
                    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
                x, y = next(data)
                loss = F.cross_entropy(model(x), y)
                if scaled:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                    norms.append([float(p.grad.norm()) if p.grad is not None else np.nan for p in model.parameters()])
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    norms.append([float(p.grad.norm()) if p.grad is not None else np.nan for p in model.parameters()])
                    opt.step()
                opt.zero_grad()
                rec.log({"train/loss": loss})
    run = open_run(tmp_path / "ft.h5")
    assert list(run.scalar("train/loss").steps) == list(range(STEPS))    # old code: 0..4 then 5, 5, 5...
    grads = run.layer_stat("grad_norm")
    recorded = [s for s in range(STEPS) if s != SWITCH]     # the switch's own step ran before the hooks moved
    assert list(grads.steps) == recorded
    after = [i for i, s in enumerate(grads.steps) if s > SWITCH]
    np.testing.assert_allclose(grads.values[after], np.array(norms)[[s for s in recorded if s > SWITCH]], rtol=1e-5)
    lr = run.scalar("sys/lr")
    assert lr.values[-1] == pytest.approx(1e-3)             # the new optimizer's
    said = [str(w.message) for w in caught if "stopped stepping" in str(w.message)]
    assert len(said) == 1 and "SGD" in said[0], said


@pytest.mark.parametrize("seed", [0, 1])
def test_a_gan_critic_stepping_alone_does_not_take_the_generators_place(tmp_path, seed):
    """WGAN: the critic steps every batch, the generator every 5th; both are in the watched module."""
    torch.manual_seed(seed)
    gan = nn.ModuleDict({"g": nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8)),
                         "d": nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))})
    opt_g = torch.optim.Adam(gan["g"].parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(gan["d"].parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "gan.h5", stats_every=1) as rec:
            rec.watch(gan, opt_g)
            for batch in range(120):           # far more critic-only iterations than the warning's
                rec.begin_forward()
                real = torch.randn(16, 8, generator=g)
                fake = gan["g"](torch.randn(16, 4, generator=g))
                d_loss = gan["d"](fake.detach()).mean() - gan["d"](real).mean()
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                if batch % 5 == 4:
                    g_loss = -gan["d"](fake).mean()
                    opt_g.zero_grad()
                    g_loss.backward()
                    opt_g.step()
                rec.end_forward()
    run = open_run(tmp_path / "gan.h5")
    assert list(run.layer_stat("grad_norm").steps) == list(range(24))    # the generator's steps
    assert not [w for w in caught if "stopped stepping" in str(w.message) or "has not stepped" in str(w.message)]


def test_a_new_optimizer_over_other_parameters_is_not_taken_but_said(tmp_path):
    """Phase 2 trains the first layer with a new optimizer and the watched one (the head's) never
    steps again: it cannot take the watched one's place (other parameters), and the steps stand
    still, so the user is told once, after more iterations than a GAN critic's extra steps."""
    from trainspect.recorder.instruments import SILENT_ITERATIONS

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    head = torch.optim.Adam(model[2].parameters(), lr=1e-2)
    data = batches(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "phase2.h5") as rec:
            rec.watch(model, head)
            opt = head
            for step in range(SWITCH + SILENT_ITERATIONS + 5):
                if step == SWITCH:
                    opt = torch.optim.SGD(model[0].parameters(), lr=1e-2)
                x, y = next(data)
                F.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad()
    said = [str(w.message) for w in caught if "has not stepped" in str(w.message)]
    assert len(said) == 1 and f"for {SILENT_ITERATIONS} iterations" in said[0], said
    assert not [w for w in caught if "stopped stepping" in str(w.message)]
