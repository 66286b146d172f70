"""The advisor on small training scripts written the way tutorials write them (sweep of
2026-12-06): a network whose every ReLU is dead was reported as "LR too low" (its dead units
were taken for one-sample batches), and dead units from unscaled inputs as "LR too high"."""
from __future__ import annotations

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder


def _data(seed, n=512, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=gen)
    y = (x @ torch.randn(20, generator=gen) > 0).long() + 2 * (x[:, 0] > 0.5).long()
    return x * scale + (scale if scale != 1.0 else 0.0), y


def _fit(path, model, opt, x, y, steps, *, batch=64, val=None, val_every=20, stats_every=None):
    """Train ``model`` on (x, y) (minibatches of ``batch``, or the whole set with None), log the
    loss, and the validation loss on ``val`` every ``val_every`` steps; the advisor's findings."""
    with Recorder(path) as rec:
        rec.watch(model, opt, **({"stats_every": stats_every} if stats_every else {}))
        for step in range(steps):
            if batch is None:
                xb, yb = x, y
            else:
                idx = torch.randint(0, len(x), (batch,), generator=torch.Generator().manual_seed(step))
                xb, yb = x[idx], y[idx]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
            if val is not None and step % val_every == val_every - 1:
                model.eval()
                with torch.no_grad():
                    rec.log({"val/loss": torch.nn.functional.cross_entropy(model(val[0]), val[1]).item()})
                model.train()
    with open_run(path) as run:
        return diagnose(run)


def _train(path, seed, *, bias=None, scale=1.0, lr=0.01, steps=150):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 4))
    if bias is not None:
        for layer in (model[0], model[2]):
            torch.nn.init.constant_(layer.bias, bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, y = _data(seed, scale=scale)
    return _fit(path, model, opt, x, y, steps, stats_every=5)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_relu_dead_from_a_bad_bias_is_named(tmp_path, seed):
    findings = _train(tmp_path / "dead.h5", seed, bias=-10.0)
    top = findings[0]
    assert top.symptom == "dead_units" and top.severity == "error"
    assert top.causes[0].id == "bad_init"


@pytest.mark.parametrize("seed", [0, 1])
def test_units_killed_by_unscaled_inputs_blame_the_inputs(tmp_path, seed):
    findings = _train(tmp_path / "raw.h5", seed, scale=300.0)
    symptoms = [f.symptom for f in findings]
    assert "unnormalized_inputs" in symptoms
    for f in findings:
        if f.symptom == "dead_units":
            assert f.causes[0].id == "input_scaling", f.causes


@pytest.mark.parametrize("seed", [0, 1])
def test_a_layer_left_out_of_the_optimizer_is_not_told_to_call_zero_grad(tmp_path, seed):
    """Its gradients are never cleared (the optimizer's zero_grad() does not know them): the
    global norm grows, and 'call optimizer.zero_grad()' came first for a script that does."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    params = [p for i in (0, 4) for p in model[i].parameters()]       # model[2] forgotten
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = _data(seed)
    frozen = next(f for f in _fit(tmp_path / "left_out.h5", model, opt, x, y, 150) if f.symptom == "frozen_layers")
    assert frozen.causes[0].id == "optimizer_setup"
    assert frozen.fixes[0].id != "zero_grad" and "zero_grad() once per step" not in frozen.fixes[0].text


@pytest.mark.parametrize("seed", [0, 1])
def test_a_blow_up_from_the_first_step_is_not_said_to_follow_a_calm_start(tmp_path, seed):
    findings = _train(tmp_path / "hot.h5", seed, lr=10.0, steps=60)
    assert findings[0].causes[0].id == "lr_too_high"
    assert {"nan_inf", "divergence", "exploding_gradients"} & {f.symptom for f in findings}
    for f in findings:
        for cause in f.causes:
            assert "calm start" not in cause.why, (f.symptom, cause.why)


def _classify(path, seed, shuffled):
    torch.manual_seed(seed)
    x, y = _data(seed, n=1024)
    x, y, xv, yv = x[:768], y[:768], x[768:], y[768:]   # one task, split: train and validation alike
    if shuffled:   # labels permuted apart from their inputs: nothing to learn that generalises
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    model = torch.nn.Sequential(torch.nn.Linear(20, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    return _fit(path, model, opt, x, y, 300, val=(xv, yv))


@pytest.mark.parametrize("seed", [0, 1])
def test_labels_shuffled_apart_from_their_inputs_are_found(tmp_path, seed):
    """Val loss stuck at the untrained level (ln 4 here) while the training loss fell: 'no
    problems found' before (a +2 % rise, a 7 % fall: under every threshold)."""
    findings = _classify(tmp_path / "shuffled.h5", seed, shuffled=True)
    f = next(f for f in findings if f.symptom == "overfitting")
    assert f.facts.get("never_generalised") and f.causes[0].id == "label_noise"
    assert f.fixes[0].id == "check_pairing"
    healthy = _classify(tmp_path / "healthy.h5", seed, shuffled=False)
    assert not [f for f in healthy if f.severity != "info"], [f.title for f in healthy]


@pytest.mark.parametrize("seed", [0, 1])
def test_overfitting_fixes_say_what_the_run_already_uses(tmp_path, seed):
    """AdamW with weight decay and Dropout layers were told to 'add weight decay' and 'add dropout'."""
    torch.manual_seed(seed)
    x, y = _data(seed, n=1064)
    y[:16] = (y[:16] + 1) % 4   # a tiny train set, a quarter of it mislabelled
    x, y, xv, yv = x[:64], y[:64], x[64:], y[64:]
    model = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(256, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    findings = _fit(tmp_path / "overfit.h5", model, opt, x, y, 400, batch=None, val=(xv, yv), val_every=10)
    f = next(f for f in findings if f.symptom == "overfitting")
    texts = [fix.text for fix in f.fixes]
    assert "raise the weight decay (now 0.05)" in texts and not any(t == "add weight decay" for t in texts)
    assert any(t.startswith("raise the dropout rate") for t in texts)


def test_init_advice_for_a_recurrent_net_does_not_speak_of_relu():
    """nn.RNN's tanh is inside the module: 'use He (Kaiming) init for ReLU layers' was the advice."""
    from types import SimpleNamespace

    from trainspect.analysis.advisor.causes import CAUSE_CATALOGUE, _init_fixes
    from trainspect.analysis.advisor.context import Context

    ctx = Context()
    ctx.sig.modules = [SimpleNamespace(type="Embedding", name="emb"), SimpleNamespace(type="RNN", name="rnn"),
                       SimpleNamespace(type="Linear", name="head")]
    text = _init_fixes(CAUSE_CATALOGUE["bad_init"].fixes, None, ctx)[0].text
    assert "ReLU" not in text and "Xavier" in text and "orthogonal recurrent weights" in text


@pytest.mark.parametrize("seed", [0, 1])
def test_training_continued_from_a_trained_model_is_not_read_as_one_that_never_generalised(tmp_path, seed):
    """A model trained to ~0 loss, then trained on in a new run (a new file, a fine-tune at the same
    LR): its first training loss is ~0.002 and its validation loss ~0.04. 'val/loss never improved:
    it stayed at the untrained level' was said of that (the first training loss taken for an
    untrained model's); a validation loss that rose from its best is overfitting, told as such."""
    torch.manual_seed(seed)
    x, y = _data(seed, n=1024)
    x, y, xv, yv = x[:768], y[:768], x[768:], y[768:]
    model = torch.nn.Sequential(torch.nn.Linear(20, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    _fit(tmp_path / "pretrain.h5", model, opt, x, y, 1500, val=(xv, yv))
    findings = _fit(tmp_path / "continued.h5", model, opt, x, y, 400, val=(xv, yv))
    assert not any(f.facts.get("never_generalised") for f in findings), [f.title for f in findings]
    assert not any("untrained" in f.title for f in findings), [f.title for f in findings]
