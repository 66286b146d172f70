"""A classifier whose loss stays at chance while its weights move is named, with the loss/output
pairing first when the scores were squashed before a loss that squashes them again (trial 15:
a softmax before nn.CrossEntropyLoss in an SGD ResNet went 2.30 -> 2.18 in 300 steps and read
"no problems found"; pytorch/examples' siamese_network with its Sigmoid output fed to
BCEWithLogitsLoss read "raise the LR 10x")."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scenario_kit import fit_and_diagnose

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _classifier(path, seed, *, softmax_first, steps=300):
    """An MLP on a learnable 10-class task under SGD with momentum, its logits softmaxed before
    cross_entropy in the loop (invisible to watch()) or not."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    w = torch.randn(32, 10, generator=g)

    def loss_of():
        x = torch.randn(64, 32, generator=g)
        out = model(x)
        return F.cross_entropy(out.softmax(1) if softmax_first else out, (x @ w).argmax(1))

    return fit_and_diagnose(path, model, opt, loss_of, steps)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_a_softmax_before_cross_entropy_under_sgd_is_named(tmp_path, seed):
    findings = _classifier(tmp_path / "sm.h5", seed, softmax_first=True)
    f = next(f for f in findings if f.symptom in ("stuck_at_chance", "no_progress"))
    assert f.severity == "warning"
    # from the loss alone a softmax in the loop and labels shuffled apart from their inputs look
    # the same: both are named, both checks come first, and the LR is not the advice
    top = {c.id: c for c in f.causes[:2]}
    assert set(top) == {"loss_setup", "label_noise"} and "softmax" in top["loss_setup"].why
    assert "check_loss_output" in [x.id for x in f.fixes[:3]]
    assert "raise_lr" not in [x.id for x in f.fixes[:4]]


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_the_same_model_on_raw_logits_trains_and_is_not_flagged(tmp_path, seed):
    findings = _classifier(tmp_path / "ok.h5", seed, softmax_first=False)
    assert not [f for f in findings if f.severity != "info"], [f.title for f in findings]


def _binary(path, seed, *, loss, steps=300, signal=1.0, lr=1.0):
    """A binary classifier ending in nn.Sigmoid, as pytorch/examples' siamese_network, on noisy labels,
    with BCELoss (right: ~0.85 of ln 2 at the end) or BCEWithLogitsLoss (the sigmoid applied twice:
    ~0.94 of ln 2)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    opt = torch.optim.Adadelta(model.parameters(), lr=lr)
    w = torch.randn(16, generator=g)
    crit = nn.BCELoss() if loss == "bce" else nn.BCEWithLogitsLoss()

    def loss_of():
        x = torch.randn(64, 16, generator=g)
        y = (signal * (x @ w) + 5.0 * torch.randn(64, generator=g) > 0).float()   # noisy: no loss near 0
        return crit(model(x).squeeze(1), y)

    return fit_and_diagnose(path, model, opt, loss_of, steps)


@pytest.mark.parametrize("seed", (0, 1))
def test_a_sigmoid_output_fed_to_bce_with_logits_names_the_pairing_first(tmp_path, seed):
    findings = _binary(tmp_path / "twice.h5", seed, loss="logits")
    f = next(f for f in findings if f.symptom in ("stuck_at_chance", "no_progress"))
    assert f.severity == "warning" and f.causes[0].id == "loss_setup"
    assert "BCEWithLogitsLoss" in f.causes[0].why
    assert f.fixes[0].id == "check_loss_output"


@pytest.mark.parametrize("seed", (0, 1))
def test_the_sigmoid_output_with_bce_loss_is_not_blamed(tmp_path, seed):
    findings = _binary(tmp_path / "bce.h5", seed, loss="bce")
    # it levels off at the floor its noisy labels allow (early_plateau may say so); the pairing is right
    assert {"stuck_at_chance", "no_progress"}.isdisjoint(f.symptom for f in findings)
    assert "loss_setup" not in [c.id for f in findings for c in f.causes]


@pytest.mark.parametrize("seed", (0, 1))
def test_a_run_whose_own_warning_explains_the_stall_gets_that_warning_alone(tmp_path, seed):
    """Dropout at p = 0.9 keeps the loss near chance, and strong_dropout (a warning only once its
    own last look has seen the loss stall) says why: no second warning that the loss is at chance."""
    from tests.scenarios import dropout_ninety
    path = tmp_path / "d90.h5"
    with Recorder(path) as rec:
        dropout_ninety(rec, seed)
    warned = [f.symptom for f in diagnose(path) if f.severity != "info"]
    assert warned == ["strong_dropout"]


@pytest.mark.parametrize("seed", (0, 1))
def test_a_right_sigmoid_and_bce_pairing_on_labels_without_signal_names_the_labels(tmp_path, seed):
    """BCELoss on a Sigmoid output is right: at chance its outputs sit near 0.5 (a double sigmoid's
    drift to 0.1-0.2), so the labels are the suspect, not the pairing (user trial: a hard binary
    task read 'loss setup' first and label noise not at all)."""
    findings = _binary(tmp_path / "nolabels.h5", seed, loss="bce", signal=0.0, lr=0.1)
    f = next(f for f in findings if f.symptom in ("stuck_at_chance", "no_progress"))
    assert f.causes[0].id == "label_noise"
    assert "loss_setup" not in [c.id for c in f.causes[:1]]
