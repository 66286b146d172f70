"""ReLUs dead from the first record (biases of -10) leave the loss flat: the flat loss's fixes
said "raise the learning rate 10x" after the init fixes (sweep of 2026-12-06). The weights stand
still for want of gradient; a larger LR moves nothing."""
from __future__ import annotations

import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1])
def test_a_loss_flat_behind_relus_dead_from_init_is_not_told_to_raise_the_lr(tmp_path, seed):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from tests.scenario_kit import digits, train
    from tests.scenarios import RECORDER_OPTIONS
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    with Recorder(tmp_path / "dead.h5", **RECORDER_OPTIONS) as rec:
        train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), data=digits(), seed=seed)
    with open_run(tmp_path / "dead.h5") as run:
        found = {f.symptom: f for f in diagnose(run)}
    assert "dead_units" in found and found["dead_units"].causes[0].id == "bad_init"
    flat = found.get("no_progress")
    assert flat is not None and flat.causes[0].id == "bad_init"
    assert not [x.text for x in flat.fixes if "learning rate" in x.text], [x.text for x in flat.fixes]
