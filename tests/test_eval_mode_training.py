"""model.eval() for validation and no model.train() after it, a classic: the training steps after
it ran with dropout and batch norm in evaluation behaviour. The recorder saw no training forward
from then on, so every loss logged after optimizer.step() was labelled one step late, and
nothing said why activation statistics stopped. Now the step label is right and the user is
told once. Validation forwards that merely forget torch.no_grad() say nothing."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS, VALIDATE_AT = 10, 4


def train(path, seed, back_to_train):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.3), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, stats_every=1) as rec:
            rec.watch(model, opt)
            model.train()
            for step in range(STEPS):
                x, y = torch.randn(16, 8, generator=data), torch.randint(0, 3, (16,), generator=data)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
                rec.log({"train/loss": loss})
                if step == VALIDATE_AT:
                    model.eval()
                    rec.log({"val/loss": F.cross_entropy(model(x), y)})   # without torch.no_grad()
                    if back_to_train:
                        model.train()
    return open_run(path), [str(w.message) for w in caught if "eval mode" in str(w.message)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_left_in_eval_mode_is_labelled_right_and_said_once(tmp_path, seed):
    run, said = train(tmp_path / "eval.h5", seed, back_to_train=False)
    assert list(run.scalar("train/loss").steps) == list(range(STEPS))   # old code: ..., 4, 6, 7, ...
    assert list(run.scalar("val/loss").steps) == [VALIDATE_AT]
    assert len(said) == 1 and "model.train()" in said[0]
    assert list(run.layer_stat("act_std").steps) == list(range(VALIDATE_AT + 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_validation_without_no_grad_then_train_mode_says_nothing(tmp_path, seed):
    run, said = train(tmp_path / "ok.h5", seed, back_to_train=True)
    assert list(run.scalar("train/loss").steps) == list(range(STEPS))
    assert list(run.layer_stat("act_std").steps) == list(range(STEPS))
    assert said == []


@pytest.mark.parametrize("seed", [0, 1])
def test_the_advisor_names_training_in_eval_mode_and_the_fix(tmp_path, seed):
    from trainspect.analysis.advisor import diagnose

    bad, _ = train(tmp_path / "eval.h5", seed, back_to_train=False)
    found = {f.symptom: f for f in diagnose(tmp_path / "eval.h5")}["eval_mode_training"]
    assert (found.first_step, found.last_step) == (VALIDATE_AT + 1, STEPS - 1)
    assert found.causes[0].id == "train_mode_off" and "model.train()" in found.fixes[0].text
    train(tmp_path / "ok.h5", seed, back_to_train=True)
    assert "eval_mode_training" not in {f.symptom for f in diagnose(tmp_path / "ok.h5")}


def test_a_model_in_eval_mode_with_a_part_training_is_deliberate(tmp_path):
    """model.eval() then model[-1].train(): batch norm and dropout frozen on purpose in the rest
    (a fine-tuning recipe). The step labels still follow the forward; nothing is reported."""
    from trainspect.analysis.advisor import diagnose

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model[-1].parameters(), lr=0.1)
    model.eval()
    model[-1].train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "head.h5") as rec:
            rec.watch(model, opt)
            for _ in range(STEPS):
                loss = F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 3, (16,)))
                loss.backward()
                opt.step()
                opt.zero_grad()
                rec.log({"train/loss": loss})
    assert list(open_run(tmp_path / "head.h5").scalar("train/loss").steps) == list(range(STEPS))
    assert not [w for w in caught if "eval mode" in str(w.message)]
    assert "eval_mode_training" not in {f.symptom for f in diagnose(tmp_path / "head.h5")}



def test_a_deliberately_partial_eval_model_is_not_walked_at_every_step(tmp_path):
    """The check for a part still training walked every module at every step (a large frozen
    backbone: thousands of modules); the part found training is checked first from then on."""
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)], nn.Linear(8, 3))
    opt = torch.optim.SGD(model[-1].parameters(), lr=0.1)
    model.eval()
    model[-1].train()
    walks = []
    modules = model.modules
    model.modules = lambda: walks.append(1) or modules()
    with Recorder(tmp_path / "partial.h5") as rec:
        rec.watch(model, opt)
        before = len(walks)
        for _ in range(STEPS):
            F.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 3, (4,))).backward()
            opt.step()
            opt.zero_grad()
        assert len(walks) - before <= 1
