"""Validation computed with the model still in train mode (model.eval() forgotten) is noticed.

The recorder marks forwards without grad while a Dropout/BatchNorm trains (``sys/nograd_train_mode``,
host flags only); the advisor warns when those marks sit at the validation loss's points (trial 15,
F9: a tabular MLP with Dropout(0.2) validated without model.eval() read "no problems found").
Sampling under no_grad in train mode, with no validation beside it, is left alone.
"""
from __future__ import annotations

import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder
from trainspect.recorder.format import SYS_NOGRAD_TRAIN_MODE


def _train(path, seed, *, norm, call_eval, validate=True, sample=False, train_acc=False, reentrant=False,
           sample_after=False, pseudo=False, log_step=None):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(1024, 20, generator=g)
    y = (X[:, :3].sum(1) > 0).long()
    layers = [torch.nn.Linear(20, 64), torch.nn.BatchNorm1d(64) if norm else torch.nn.Dropout(0.3),
              torch.nn.ReLU(), torch.nn.Linear(64, 2)]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with Recorder(path, flush_every=0.5, stats_every=5) as rec:
        rec.watch(model, opt)
        for epoch in range(8):
            model.train()
            for i in range(0, 768, 64):
                if pseudo:   # pseudo-labels of an unlabelled batch, under no_grad, in train mode, each step
                    with torch.no_grad():
                        model(X[768:832]).argmax(1)
                x = X[i:i + 64].requires_grad_(reentrant)
                out = torch.utils.checkpoint.checkpoint(model, x, use_reentrant=True) if reentrant else model(x)
                loss = torch.nn.functional.cross_entropy(out, y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss})
            if train_acc:   # the training accuracy under no_grad, still in train mode, before model.eval()
                with torch.no_grad():
                    rec.log({"train_acc": (model(X[:768]).argmax(1) == y[:768]).float().mean()})
            if sample:      # a look at the outputs under no_grad, still in train mode, not a validation
                with torch.no_grad():
                    rec.log({"sample_mean": model(X[:8]).mean()})
            if validate:
                if call_eval:
                    model.eval()
                with torch.no_grad():
                    val = torch.nn.functional.cross_entropy(model(X[768:]), y[768:])
                model.train()
                rec.log({"val/loss": val}, step=None if log_step is None else log_step(epoch))
            if sample_after:   # a look at the outputs after the validation, model back in train mode
                with torch.no_grad():
                    model(X[:8]).softmax(1)
    with open_run(path) as run:
        return {f.symptom: f for f in diagnose(run)}, run.scalar_names()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", [False, True])
def test_validation_without_model_eval_is_a_warning_naming_the_module(tmp_path, seed, norm):
    found, _ = _train(tmp_path / "bug.h5", seed, norm=norm, call_eval=False)
    f = found["validation_in_train_mode"]
    assert f.severity == "warning" and ("BatchNorm" if norm else "Dropout") in f.title
    assert f.causes[0].id == "train_mode_at_validation" and "model.eval()" in f.fixes[0].text
    if norm:
        assert "running statistics" in f.evidence[0].text


@pytest.mark.parametrize("seed", [0, 1])
def test_validation_in_eval_mode_and_sampling_in_train_mode_stay_clean(tmp_path, seed):
    found, names = _train(tmp_path / "ok.h5", seed, norm=False, call_eval=True)
    assert "validation_in_train_mode" not in found and SYS_NOGRAD_TRAIN_MODE not in names
    found, names = _train(tmp_path / "sample.h5", seed, norm=True, call_eval=False, validate=False, sample=True)
    assert SYS_NOGRAD_TRAIN_MODE in names              # recorded ...
    assert "validation_in_train_mode" not in found     # ... but no validation beside it


@pytest.mark.parametrize("seed", [0, 1])
def test_a_training_accuracy_in_train_mode_before_an_eval_mode_validation_is_not_the_validation(tmp_path, seed):
    found, names = _train(tmp_path / "acc.h5", seed, norm=True, call_eval=True, train_acc=True)
    assert SYS_NOGRAD_TRAIN_MODE in names              # the accuracy's forward was marked, then cleared
    assert "validation_in_train_mode" not in found
    found, _ = _train(tmp_path / "acc_bug.h5", seed, norm=True, call_eval=False, train_acc=True)
    assert "validation_in_train_mode" in found


@pytest.mark.parametrize("seed", [0, 1])
def test_a_whole_model_reentrant_checkpoint_is_not_a_no_grad_forward(tmp_path, seed):
    """checkpoint(model, x, use_reentrant=True) runs the training forward under no_grad."""
    pytest.importorskip("torch.utils.checkpoint")
    found, names = _train(tmp_path / "ckpt.h5", seed, norm=False, call_eval=True, reentrant=True)
    assert SYS_NOGRAD_TRAIN_MODE not in names and "validation_in_train_mode" not in found


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", [False, True])
def test_a_sample_in_train_mode_after_an_eval_mode_validation_is_not_the_validation(tmp_path, seed, norm):
    """trial 16 (nanoGPT, char-rnn habit): model.eval(), validation, model.train(), then a text
    sample under no_grad; logged with step=None and with step=<the completed iteration>."""
    found, names = _train(tmp_path / "s.h5", seed, norm=norm, call_eval=True, sample_after=True)
    assert SYS_NOGRAD_TRAIN_MODE in names and "validation_in_train_mode" not in found
    found, _ = _train(tmp_path / "it.h5", seed, norm=norm, call_eval=True, sample_after=True,
                      log_step=lambda epoch: 12 * epoch + 11)
    assert "validation_in_train_mode" not in found
    found, _ = _train(tmp_path / "bug.h5", seed, norm=norm, call_eval=False, sample_after=True)
    assert "validation_in_train_mode" in found         # without model.eval() it is still seen


@pytest.mark.parametrize("seed", [0, 1])
def test_pseudo_labels_in_train_mode_at_every_step_are_not_the_validation(tmp_path, seed):
    """trial 16: pseudo-labels under no_grad in train mode at each step (Dropout/BatchNorm on), the
    validation with model.eval(): a mark at every step, the validation's step reads 0."""
    for norm in (False, True):
        found, names = _train(tmp_path / f"p{norm}.h5", seed, norm=norm, call_eval=True, pseudo=True)
        assert SYS_NOGRAD_TRAIN_MODE in names and "validation_in_train_mode" not in found
        found, _ = _train(tmp_path / f"bug{norm}.h5", seed, norm=norm, call_eval=False, pseudo=True)
        f = found["validation_in_train_mode"]
        assert ("BatchNorm" if norm else "Dropout") in f.title and f.facts["validations"] == 8


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", [False, True])
def test_a_validation_without_model_eval_logged_with_step_epoch_is_seen(tmp_path, seed, norm):
    """trial 16, M3 (the TensorBoard habit): val/loss logged with step=epoch, 0..7, while the marks
    carry optimizer steps 12..96: read by order, one mark an epoch."""
    found, _ = _train(tmp_path / "bug.h5", seed, norm=norm, call_eval=False, log_step=lambda epoch: epoch)
    f = found["validation_in_train_mode"]
    assert ("BatchNorm" if norm else "Dropout") in f.title and f.facts["validations"] == 8
    found, _ = _train(tmp_path / "ok.h5", seed, norm=norm, call_eval=True, sample_after=True,
                      log_step=lambda epoch: epoch)
    assert "validation_in_train_mode" not in found
    found, _ = _train(tmp_path / "pl.h5", seed, norm=norm, call_eval=True, pseudo=True, log_step=lambda epoch: epoch)
    assert "validation_in_train_mode" not in found     # a mark at every step is not a validation an epoch
