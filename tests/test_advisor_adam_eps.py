"""The advisor on an Adam-family optimizer whose eps dwarfs sqrt(v) (sweep of 2026-12-06): with
eps=1 the step lr * m / (sqrt(v) + eps) is ~lr * m / eps, ~300x smaller than Adam's own, and the
flat loss was blamed on the LR ("raise the learning rate 10x") or on the initialisation; with
eps=0.1 the slow descent was a note saying "train longer". The optimizer's param groups (eps) are
in the run's metadata and the gradients' RMS per element comes from the per-parameter gradient
norms: eps >= 10x that RMS is named, eps up to 1e-6 (torch, Keras, HF defaults) never."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.optimizer_eps import (
    EPS_OVER_GRAD,
    eps_dominance,
    gradient_rms,
    uses_eps_in_denominator,
)
from trainspect.analysis.advisor.signals import Signals
from trainspect.analysis.advisor.tables import as_table
from trainspect.analysis.run import ModuleInfo, ParamInfo

from tests.scenario_runs import grid

pytestmark = pytest.mark.timeout(1800)
SEEDS = (0, 1)


# ------------------------------------------------------------------ recorded runs (the scenario suite's)
@pytest.fixture(scope="module")
def runs(scenario_runs):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    scenario_runs.ensure(grid(("adam_eps_one", "adamw_eps_tenth", "healthy_adam_eps_1e3"), seeds=SEEDS, threads=(1,)))
    return scenario_runs


def _findings(runs, name, seed):
    with open_run(runs.path(name, seed, 1)) as run:
        return diagnose(run)


def _finding(runs, name, seed, symptom):
    found = _findings(runs, name, seed)
    hit = next((f for f in found if f.symptom == symptom), None)
    assert hit is not None, [(f.symptom, f.causes[0].id if f.causes else None) for f in found]
    return hit


@pytest.mark.parametrize("seed", SEEDS)
def test_adam_eps_one_is_named_not_a_low_lr(runs, seed):
    f = _finding(runs, "adam_eps_one", seed, "no_progress")
    assert f.severity == "warning"
    assert f.causes[0].id == "adam_eps_too_large", [c.id for c in f.causes]
    assert "lr_too_low" not in [c.id for c in f.causes[:2]]
    assert f.fixes[0].id == "reset_eps", [x.text for x in f.fixes]
    assert "set eps back to 1e-8 (now 1)" in f.fixes[0].text
    assert "raise_lr" not in [x.id for x in f.fixes[:2]]
    assert "eps=1e-8" in f.confirm


@pytest.mark.parametrize("seed", SEEDS)
def test_adamw_eps_tenth_slow_descent_is_a_warning_that_names_eps(runs, seed):
    f = _finding(runs, "adamw_eps_tenth", seed, "slow_convergence")
    assert f.severity == "warning"      # training longer is not the fix
    assert f.causes[0].id == "adam_eps_too_large"
    assert f.fixes[0].id == "reset_eps" and "(now 0.1)" in f.fixes[0].text, f.fixes[0].text


@pytest.mark.parametrize("seed", SEEDS)
def test_adam_eps_1e3_that_trains_raises_nothing(runs, seed):
    found = _findings(runs, "healthy_adam_eps_1e3", seed)
    assert not [f.symptom for f in found if f.severity != "info"]
    assert not [f for f in found for c in f.causes if c.id == "adam_eps_too_large"]


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_adam_with_hf_eps_raises_nothing(tmp_path, seed):
    """eps=1e-6 (HF/BERT): never blamed, whatever the gradients."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from trainspect.recorder import Recorder

    from tests.scenario_kit import mlp, train
    from tests.scenarios import RECORDER_OPTIONS
    torch.manual_seed(80 + seed)
    model = mlp([64, 128, 64, 10])
    path = tmp_path / "hf_eps.h5"
    with Recorder(str(path), **RECORDER_OPTIONS) as rec:
        train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-6, weight_decay=0.01), seed=seed)
    with open_run(path) as run:
        found = diagnose(run)
    assert not [f.symptom for f in found if f.severity != "info"]
    assert not [f for f in found for c in f.causes if c.id == "adam_eps_too_large"]


# ------------------------------------------------------------------ the rule on synthetic signals (exact numbers)
def _signals(opt_type="Adam", eps=1.0, grad=(0.2, 0.02, 0.3, 0.06), records=50, loss=None, groups=None):
    """A 64-128-10 MLP's run: per-parameter gradient norms ``grad`` at every record."""
    params = [ParamInfo("0.weight", "0", (128, 64), 8192), ParamInfo("0.bias", "0", (128,), 128),
              ParamInfo("2.weight", "2", (10, 128), 1280), ParamInfo("2.bias", "2", (10,), 10)]
    layers = [p.name for p in params]
    g = np.tile(np.asarray(grad, np.float32), (records, 1))
    if groups is None:
        groups = [{"lr": 1e-3, "eps": eps, "weight_decay": 0.0, "n_params": 4}]
    meta = {"optimizer": {"type": opt_type, "hyperparameters": {"lr": 1e-3, "eps": eps}, "param_groups": groups}}
    sig = Signals(meta=meta, params=params, modules=[ModuleInfo("0", "Linear"), ModuleInfo("1", "ReLU"),
                                                     ModuleInfo("2", "Linear")])
    sig.layer["grad_norm"] = as_table(g, np.arange(records) * 1, layers)
    if loss is not None:
        sig.train_loss = ("train/loss", np.arange(len(loss)), np.asarray(loss, np.float64))
    return sig


def test_gradient_rms_is_the_typical_elements():
    sig = _signals(grad=(0.2, 0.02, 0.3, 0.06))
    # per element: 0.2/sqrt(8192) = 2.2e-3 (8192 elements), 0.3/sqrt(1280) = 8.4e-3 (1280), biases: few elements
    assert gradient_rms(sig) == pytest.approx(0.2 / np.sqrt(8192), rel=1e-5)


def test_eps_is_named_from_ten_times_the_gradient_rms():
    rms = 0.2 / np.sqrt(8192)
    assert eps_dominance(_signals(eps=EPS_OVER_GRAD * rms * 1.01))["ratio"] == pytest.approx(10.1, rel=1e-3)
    assert eps_dominance(_signals(eps=EPS_OVER_GRAD * rms * 0.99)) is None
    e = eps_dominance(_signals(eps=1.0))
    assert e["eps"] == 1.0 and e["optimizer"] == "Adam" and e["ratio"] == pytest.approx(1 / rms, rel=1e-5)


def test_common_eps_defaults_are_never_named_even_with_tiny_gradients():
    tiny = (1e-9, 1e-9, 1e-9, 1e-9)
    for eps in (1e-8, 1e-7, 1e-6):
        assert eps_dominance(_signals(eps=eps, grad=tiny)) is None, eps
    assert eps_dominance(_signals(eps=1e-5, grad=tiny)) is not None


def test_only_optimizers_that_divide_by_sqrt_v_plus_eps():
    for kind in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax", "FusedAdam", "AdamW8bit", "PagedAdamW", "RMSprop"):
        assert uses_eps_in_denominator(kind), kind
        assert eps_dominance(_signals(opt_type=kind)) is not None, kind
    for kind in ("SGD", "Adafactor", "Adagrad", "Adadelta", "Lamb", "FusedLAMB", "LBFGS", ""):
        assert eps_dominance(_signals(opt_type=kind)) is None, kind


def test_the_smallest_eps_of_the_param_groups_is_judged():
    groups = [{"lr": 1e-3, "eps": 1.0, "n_params": 2}, {"lr": 1e-3, "eps": 1e-8, "n_params": 2}]
    assert eps_dominance(_signals(groups=groups)) is None
    groups = [{"lr": 1e-3, "eps": 1.0, "n_params": 2}, {"lr": 1e-3, "eps": 0.5, "n_params": 2},
              {"lr": 1e-3, "eps": 1e-8, "n_params": 0}]            # an empty group says nothing
    assert eps_dominance(_signals(groups=groups))["eps"] == 0.5


def test_files_without_param_groups_or_gradients():
    sig = _signals(eps=1.0)
    sig.meta["optimizer"].pop("param_groups")                  # the defaults only
    assert eps_dominance(sig)["eps"] == 1.0
    sig.layer.clear()                                          # no per-parameter norms: the global one
    sig.scalars["sys/grad_norm"] = (np.arange(50), np.full(50, 0.4))
    assert gradient_rms(sig) == pytest.approx(0.4 / np.sqrt(8192 + 128 + 1280 + 10))
    del sig.scalars["sys/grad_norm"]
    assert eps_dominance(sig) is None                          # no gradient scale: no claim
    assert eps_dominance(Signals(meta={"optimizer": 3})) is None


def test_a_flat_loss_with_eps_one_ranks_eps_first_and_a_healthy_loss_says_nothing():
    rng = np.random.default_rng(0)
    flat = 2.3 + 0.02 * rng.standard_normal(300)
    found = diagnose_signals(_signals(eps=1.0, loss=flat))
    f = next(f for f in found if f.symptom == "no_progress")
    assert f.causes[0].id == "adam_eps_too_large" and f.fixes[0].id == "reset_eps"
    falling = 2.3 * np.exp(-np.arange(300) / 40) + 0.05 + 0.02 * rng.standard_normal(300)
    assert not [f for f in diagnose_signals(_signals(eps=1.0, loss=falling)) for c in f.causes
                if c.id == "adam_eps_too_large"]      # the cause needs a stalled or slow loss
