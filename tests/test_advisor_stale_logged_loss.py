"""A logged loss that is the same number at every step, bit for bit (sweep of 2026-12-06): the
advisor said "lr too low: raise the learning rate 10x". A training loss moves with every batch
and every update; when the weights are seen moving, the logged value is not this step's loss."""
from __future__ import annotations

import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder

SEEDS = (0, 1)


def _run(path, seed, *, stale: bool, lr: float, fixed_batch: bool = False):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from tests.scenario_kit import digits, mlp
    torch.manual_seed(seed)
    Xtr, ytr, _, _ = digits()
    model = mlp([64, 64, 10])
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    fixed = torch.randint(0, len(Xtr), (64,), generator=g)
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        first = None
        for _ in range(200):
            idx = fixed if fixed_batch else torch.randint(0, len(Xtr), (64,), generator=g)
            loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = float(loss.detach()) if first is None else first
            rec.log({"train/loss": first if stale else loss})
    with open_run(path) as run:
        return diagnose(run)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loss_logged_once_while_the_model_trains_is_named_as_such(tmp_path, seed):
    found = _run(tmp_path / "stale.h5", seed, stale=True, lr=0.05)
    f = next((f for f in found if f.symptom == "no_progress"), None)
    assert f is not None, [(g.symptom, g.title) for g in found]
    assert f.causes[0].id == "logged_value_stale" and f.fixes[0].id == "log_step_loss", [c.id for c in f.causes]
    assert "raise the learning rate" not in " ".join(x.text for x in f.fixes)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fixed_batch_at_lr_zero_is_not_taken_for_a_stale_value(tmp_path, seed):
    """Weights that do not move (LR 0) on one fixed batch give a constant loss too: the LR's doing."""
    found = _run(tmp_path / "lr0.h5", seed, stale=False, lr=0.0, fixed_batch=True)
    f = next((f for f in found if f.symptom == "no_progress"), None)
    assert f is not None and f.facts["constant_loss"]
    assert f.causes[0].id != "logged_value_stale", [c.id for c in f.causes]
