"""Cause ranking from the structured facts of a run (synthetic signals, no recording): root-cause
chains before a NaN, and the causes of issue 12's wrong-advice and blind-spot lists."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.signals import Signals
from trainspect.analysis.advisor.tables import as_table
from trainspect.analysis.run import ModuleInfo, ParamInfo
from trainspect.recorder import format as fmt

PARAMS = [ParamInfo("0.weight", "0", (32, 16), 512), ParamInfo("0.bias", "0", (32,), 32),
          ParamInfo("2.weight", "2", (10, 32), 320), ParamInfo("2.bias", "2", (10,), 10)]
MODULES = [ModuleInfo("0", "Linear"), ModuleInfo("1", "ReLU"), ModuleInfo("2", "Linear")]


def make(loss, *, grad=None, lr=None, ratio=None, layer_grads=None, modules=MODULES, params=PARAMS, inputs=None):
    """Signals of a run logging every step: loss, optionally sys/grad_norm, sys/lr, update ratios."""
    n = len(loss)
    steps = np.arange(n)
    sig = Signals(train_loss=("train/loss", steps, np.asarray(loss, dtype=np.float64)), params=list(params),
                  modules=list(modules))
    if grad is not None:
        sig.scalars[fmt.SYS_GRAD_NORM] = (steps, np.asarray(grad, dtype=np.float64))
    if lr is not None:
        sig.scalars[fmt.SYS_LR] = (steps, np.asarray(lr, dtype=np.float64))
    names = [p.name for p in params]
    if ratio is not None:
        rs = steps[::5]
        sig.layer["update_ratio"] = as_table(np.full((len(rs), len(names)), ratio, np.float32), rs, names)
    if layer_grads is not None:
        sig.layer["grad_norm"] = as_table(np.asarray(layer_grads, np.float32), steps, names)
    if inputs is not None:
        mean, std = inputs
        sig.scalars[fmt.SYS_INPUT_MEAN] = (steps, np.full(n, mean, np.float64))
        sig.scalars[fmt.SYS_INPUT_STD] = (steps, np.full(n, std, np.float64))
    return sig


def by_symptom(findings):
    return {f.symptom: f for f in findings}


def healthy_loss(n, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 + 2.2 * np.exp(-np.arange(n) / (n / 6))) * rng.lognormal(0, 0.05, n)


def blow_up(n, start, nan_at, seed=0):
    """Calm gradient norm ~1, growing 10x a step from ``start``, Inf at ``nan_at``; loss NaN there."""
    rng = np.random.default_rng(seed)
    grad = rng.lognormal(0, 0.1, n)
    grad[start:nan_at] *= 10.0 ** np.arange(1, nan_at - start + 1)
    grad[nan_at:] = np.inf
    loss = healthy_loss(n, seed)
    loss[start:nan_at] *= np.linspace(1, 50, nan_at - start)
    loss[nan_at:] = np.nan
    return loss, grad


# ------------------------------------------------------------ root-cause chains
@pytest.mark.parametrize("seed", range(3))
def test_nan_after_growth_names_the_growth_as_precursor_and_blames_the_lr(seed):
    loss, grad = blow_up(100, start=25, nan_at=46, seed=seed)
    found = by_symptom(diagnose_signals(make(loss, grad=grad, lr=np.full(100, 0.3))))
    nan, growth = found["nan_inf"], found["exploding_gradients"]
    assert nan.first_step == 46
    assert nan.precursor is not None and nan.precursor.symptom == "exploding_gradients"
    assert 20 <= nan.precursor.first_step <= 25 and nan.precursor.last_step == 45
    assert "gradient norm grew 10^" in nan.precursor.summary and "from step" in nan.precursor.summary
    assert growth.facts["leads_to"] == "nan_inf" and nan.facts["precursor"] == "exploding_gradients"
    assert nan.causes[0].id == "lr_too_high" and growth.causes[0].id == "lr_too_high"
    doc = json.loads(json.dumps(nan.to_dict(), default=str))
    assert doc["precursor"]["symptom"] == "exploding_gradients"


def test_growth_from_the_first_steps_with_a_constant_lr_is_init():
    loss, grad = blow_up(60, start=1, nan_at=20)
    found = by_symptom(diagnose_signals(make(loss, grad=grad, lr=np.full(60, 1e-3), ratio=1e-3)))
    nan = found["nan_inf"]
    assert nan.precursor is not None and "from the first steps" in nan.precursor.summary
    assert nan.causes[0].id == "bad_init", [(c.id, c.confidence) for c in nan.causes]


def test_growth_after_a_warmup_raised_the_lr_is_the_lr():
    loss, grad = blow_up(100, start=40, nan_at=55)
    lr = np.minimum(1e-4 * 1.15 ** np.arange(100), 0.5)            # warm-up: the LR rises 100x by step 33
    found = by_symptom(diagnose_signals(make(loss, grad=grad, lr=lr)))
    nan = found["nan_inf"]
    assert nan.causes[0].id == "lr_too_high"
    assert "LR rose" in nan.causes[0].why


def test_nan_in_the_first_forward_is_numerical_not_the_lr():
    loss = np.full(50, np.nan)
    grad = np.full(50, np.nan)
    nan = by_symptom(diagnose_signals(make(loss, grad=grad, lr=np.full(50, 0.1))))["nan_inf"]
    assert nan.first_step == 0 and nan.precursor is None
    assert nan.causes[0].id == "numerical_instability"
    assert "before any update" in nan.causes[0].why
    assert nan.causes[0].confidence > 2 * max(c.confidence for c in nan.causes if c.id == "lr_too_high")


def test_sudden_nan_after_calm_values_is_numerical():
    rng = np.random.default_rng(0)
    loss, grad = healthy_loss(100), rng.lognormal(0, 0.1, 100)
    loss[70:], grad[70:] = np.nan, np.nan
    nan = by_symptom(diagnose_signals(make(loss, grad=grad)))["nan_inf"]
    assert nan.precursor is None and nan.causes[0].id == "numerical_instability"


# ------------------------------------------------------------ wrong advice and blind spots (issue 12)
def test_loss_exactly_constant_with_zero_gradients_is_the_loss_setup():
    """torchrun DDP tutorial: cross_entropy over a 1-output model, loss == 0, every gradient 0."""
    n = 200
    zeros = np.zeros((n, len(PARAMS)))
    found = by_symptom(diagnose_signals(make(np.zeros(n), grad=np.zeros(n), layer_grads=zeros)))
    flat = found["no_progress"]
    assert flat.facts["constant_loss"] and found["frozen_layers"].facts["all_zero_grad"]
    assert flat.causes[0].id == "loss_setup", [(c.id, c.confidence) for c in flat.causes]
    assert "lr_too_low" not in [c.id for c in flat.causes[:2]]
    assert flat.fixes[0].id == "check_loss_output"


def test_softmax_over_a_single_unit_blames_the_output_not_the_lr():
    n = 200
    params = [ParamInfo("0.weight", "0", (16, 8), 128), ParamInfo("0.bias", "0", (16,), 16),
              ParamInfo("2.weight", "2", (1, 16), 16), ParamInfo("2.bias", "2", (1,), 1)]
    modules = [ModuleInfo("0", "Linear"), ModuleInfo("1", "ReLU"), ModuleInfo("2", "Linear"),
               ModuleInfo("3", "Softmax")]
    sig = make(np.full(n, 0.6931), grad=np.zeros(n), layer_grads=np.zeros((n, 4)), params=params, modules=modules)
    flat = by_symptom(diagnose_signals(sig))["no_progress"]
    top2 = [c.id for c in flat.causes[:2]]
    assert set(top2) == {"loss_setup", "activation_choice"}, flat.causes
    assert "Softmax" in " ".join(c.why for c in flat.causes[:2])


def test_loss_that_exploded_then_settled_at_chance_is_lr_too_high():
    """pytorch/examples mnist at --lr 40: 2.3 -> 1702 -> 2.30, update ratios 0.34-1.2."""
    rng = np.random.default_rng(0)
    loss = 2.30 * rng.lognormal(0, 0.01, 300)
    loss[0], loss[1], loss[2], loss[3] = 2.3, 1702.0, 80.0, 9.0
    grad = rng.lognormal(0, 0.2, 300)
    grad[1] = 3279.0
    found = diagnose_signals(make(loss, grad=grad, ratio=0.5))
    f = next(f for f in found if f.symptom in ("no_progress", "early_plateau"))
    assert f.causes[0].id == "lr_too_high", [(c.id, c.confidence) for c in f.causes]
    assert "lr_too_low" not in [c.id for c in f.causes]          # contradictory cause without its own evidence
    assert f.fixes[0].id == "lower_lr"


def test_missing_zero_grad_is_read_from_linearly_growing_gradients():
    rng = np.random.default_rng(1)
    n = 300
    grad = (0.5 + 0.08 * np.arange(n)) * rng.lognormal(0, 0.05, n)      # accumulates: 0.5 -> 24
    loss = 2.3 + 0.3 * np.sin(np.arange(n) / 7.0) * np.linspace(0, 1, n) + rng.normal(0, 0.02, n)
    found = by_symptom(diagnose_signals(make(loss, grad=grad, ratio=0.05)))
    f = found["exploding_gradients"]
    assert f.facts.get("accumulating")
    assert f.causes[0].id == "optimizer_setup", [(c.id, c.confidence) for c in f.causes]
    assert f.fixes[0].id == "zero_grad"
    for other in found.values():          # every finding it causes points at the optimizer first
        if other.symptom in ("no_progress", "divergence", "loss_oscillation"):
            assert other.causes[0].id == "optimizer_setup", (other.symptom, other.causes)


def test_a_norm_that_falls_well_back_after_its_rise_is_not_accumulation():
    """Summed gradients level off where they balance; pytorch/examples' dcgan generator rose
    17 -> 88 as a line while its discriminator won, then fell back to ~60 (zeroed every step)."""
    from trainspect.analysis.advisor.gradient_rules import linear_growth
    t = np.arange(200.0)
    rise = 1.0 + 0.1 * np.minimum(t, 100)
    assert linear_growth(t, rise)["factor"] > 5                         # levelled off: still a sum
    assert linear_growth(t, np.where(t < 100, rise, 11.0 - 0.05 * (t - 100))) is None   # fell to ~55 %


def test_geometric_growth_is_not_accumulation():
    from trainspect.analysis.advisor.gradient_rules import linear_growth
    t = np.arange(300)
    assert linear_growth(t, 0.1 * 1.02 ** t) is None
    assert linear_growth(t, np.full(300, 1.0)) is None
    assert linear_growth(t, 1.0 + 0.1 * t)["factor"] > 5


def _summed_gradients(seed, steps=200, fade_at=60):
    """Norm of a sum of per-batch gradients (a shared direction plus batch noise) that fade out at
    ``fade_at`` (the units died), and the loss of fresh batches, which keeps moving."""
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(steps) < fade_at, 1.0, 1e-4)[:, None]
    grads = (0.5 + rng.normal(0, 1, (steps, 50))) * scale
    loss = 2.0 + 0.3 * rng.standard_normal(steps)
    return np.arange(steps), np.linalg.norm(np.cumsum(grads, axis=0), axis=1), loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_norm_that_climbs_then_sits_still_while_the_loss_moves_is_accumulation(seed):
    """SGD with momentum and no zero_grad() (pytorch/examples' mnist): the summed gradient climbed
    at every step, then read the same value for ten steps once the ReLUs died; no straight line."""
    from trainspect.analysis.advisor.gradient_rules import rise_then_still
    t, norm, loss = _summed_gradients(seed)
    found = rise_then_still(t, norm, loss)
    assert found is not None and found["factor"] > 5 and found["last_step"] <= 60
    assert "sat still" in found["how"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fresh_or_full_batch_gradients_are_not_accumulation(seed):
    from trainspect.analysis.advisor.gradient_rules import rise_then_still
    rng = np.random.default_rng(seed)
    t, norm, loss = _summed_gradients(seed)
    # fresh per-batch gradients: a level with batch noise, however the loss moves
    assert rise_then_still(t, 1.0 + 0.1 * rng.standard_normal(200) ** 2 + 0.02 * t, loss) is None
    # full-batch gradient descent: a smooth norm, but the loss is just as smooth
    assert rise_then_still(t, norm, 2.0 - 0.001 * t) is None
    # a slow geometric explosion keeps moving; a sum that fell back was never a sum
    assert rise_then_still(t, 0.1 * 1.02 ** t, loss) is None
    assert rise_then_still(t, np.where(t < 60, norm, norm[59] * np.exp(-0.02 * (t - 59))), loss) is None
    assert rise_then_still(t, norm, None) is None


def test_mildly_unscaled_inputs_are_flagged_and_constant_batches_are_not_evidence():
    from trainspect.analysis.advisor import input_rules as inp
    steps = np.arange(20)
    assert inp.detect_unnormalized(steps, np.full(20, 3.46), np.full(20, 1.98)) is not None   # iris 0.1-7.9
    assert inp.detect_unnormalized(steps, np.full(20, 0.45), np.full(20, 0.3)) is None        # [0, 1] images
    assert inp.detect_unnormalized(steps, np.full(20, 1.0), np.zeros(20)) is None             # all-ones rows
    assert inp.detect_unnormalized(steps, np.zeros(20), np.zeros(20)) is None                 # all-zero rows


def test_dead_units_of_constant_input_batches_are_not_reported():
    n = 100
    sig = make(healthy_loss(n), inputs=(0.0, 0.0))
    sig.layer["act_dead_frac"] = as_table(np.full((n, 3), 0.9, np.float32), np.arange(n), ["0", "1", "2"])
    assert "dead_units" not in by_symptom(diagnose_signals(sig))
    sig.scalars[fmt.SYS_INPUT_STD] = (np.arange(n), np.full(n, 1.0))
    assert "dead_units" in by_symptom(diagnose_signals(sig))


def test_fix_ids_are_unique_in_every_finding():
    loss, grad = blow_up(100, start=25, nan_at=46)
    for f in diagnose_signals(make(loss, grad=grad, lr=np.full(100, 0.3), ratio=0.05)):
        ids = [x.id for x in f.fixes]
        assert len(ids) == len(set(ids)), (f.symptom, ids)


def test_lr_fixes_say_how_to_run_a_range_test_or_quote_one_at_hand():
    from trainspect.analysis.lr_range import LRSweep
    rng = np.random.default_rng(0)
    loss = 2.30 * rng.lognormal(0, 0.01, 300)                  # flat: LR too low (tiny updates)
    sig = make(loss, grad=rng.lognormal(0, 0.1, 300), ratio=1e-6)
    flat = by_symptom(diagnose_signals(sig))["no_progress"]
    assert flat.causes[0].id == "lr_too_low"
    how = next(x for x in flat.fixes if x.id == "lr_range_test")
    assert "from trainspect import lr_range_test" in how.text
    sweep = LRSweep(name="sweep.h5", lr=np.geomspace(1e-6, 1, 50), loss=np.ones(50), smoothed=np.ones(50),
                    suggested=0.0031, steepest=0.0031, min_loss_lr=0.05)
    flat = by_symptom(diagnose_signals(sig, lr_sweep=sweep))["no_progress"]
    quoted = flat.fixes[0]
    assert quoted.id == "lr_range_test"
    assert "0.0031" in quoted.text and "sweep.h5" in quoted.text and "steepest descent" in quoted.text


@pytest.mark.parametrize("seed", range(3))
def test_a_high_irreducible_floor_is_a_note_but_a_plateau_after_an_lr_cut_is_a_warning(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(400)
    loss = (1.0 + 1.0 * np.exp(-t / 20)) * rng.lognormal(0, 0.1, t.size)    # regression with a noisy target
    floor = by_symptom(diagnose_signals(make(loss, lr=np.full(400, 0.01), ratio=2e-3)))["early_plateau"]
    assert floor.severity == "info" and floor.facts["uncorroborated"]
    cut = np.where(t < 40, 1e-3, 1e-6)
    plateau = by_symptom(diagnose_signals(make(loss, lr=cut, ratio=2e-3)))["early_plateau"]
    assert plateau.severity == "warning" and plateau.causes[0].id == "lr_too_low"


@pytest.mark.parametrize("seed", range(3))
def test_a_noisy_loss_of_weights_that_hardly_move_is_no_progress_not_divergence(seed):
    """SGD at 1e-6 on a heavy-tailed regression: the loss wanders 30 % with the batches, the weights
    move 0.03 % in all. Its ups and downs are not divergence, oscillation or a plateau."""
    rng = np.random.default_rng(seed)
    n = 250
    loss = np.exp(0.3 * np.sin(np.arange(n) / 25.0 + seed)) * rng.lognormal(0, 0.25, n)
    found = by_symptom(diagnose_signals(make(loss, ratio=1e-6)))
    assert set(found) == {"no_progress"}, list(found)
    assert found["no_progress"].causes[0].id == "lr_too_low"
    moving = by_symptom(diagnose_signals(make(healthy_loss(n, seed), ratio=2e-3)))
    assert "no_progress" not in moving


def test_one_sample_batches_are_not_dead_units():
    n = 100
    sig = make(healthy_loss(n))
    half = np.full((n, 3), 0.5, np.float32)               # batch of one: dead fraction == fraction <= 0
    sig.layer["act_dead_frac"] = as_table(half, np.arange(n), ["0", "1", "2"])
    sig.layer["act_frac_nonpos"] = as_table(half.copy(), np.arange(n), ["0", "1", "2"])
    assert "dead_units" not in by_symptom(diagnose_signals(sig))
    sig.layer["act_frac_nonpos"] = as_table(np.full((n, 3), 0.8, np.float32), np.arange(n), ["0", "1", "2"])
    assert "dead_units" in by_symptom(diagnose_signals(sig))


@pytest.mark.parametrize("seed", range(3))
def test_a_plateau_of_a_mostly_frozen_model_asks_whether_the_freeze_is_intended(seed):
    """makemore with its transformer blocks frozen by mistake (97.7 % of the parameters): the
    plateau note said "make the model wider/deeper", never that most of it does not train."""
    rng = np.random.default_rng(seed)
    t = np.arange(400)
    loss = (1.0 + 1.0 * np.exp(-t / 20)) * rng.lognormal(0, 0.1, t.size)
    sig = make(loss, lr=np.full(400, 0.01), ratio=2e-3)
    sig.meta["model"] = {"frozen_params": [0, 1]}          # the 32x16 layer: 544 of 874 elements
    plateau = by_symptom(diagnose_signals(sig))["early_plateau"]
    assert plateau.causes[0].id == "optimizer_setup" and "frozen" in plateau.causes[0].why
    assert plateau.fixes[0].id == "unfreeze" and "intended?" in plateau.title
    free = by_symptom(diagnose_signals(make(loss, lr=np.full(400, 0.01), ratio=2e-3)))["early_plateau"]
    assert free.causes[0].id != "optimizer_setup" and all(f.id != "unfreeze" for f in free.fixes)


@pytest.mark.parametrize("seed", range(3))
def test_units_that_saturate_while_the_loss_blows_up_blame_the_lr(seed):
    """HF BERT at LR 5e-2: the pooler's tanh saturated as the loss diverged, and the saturation
    alone said "replace tanh with ReLU" (75 %) beside three findings that blamed the LR."""
    rng = np.random.default_rng(seed)
    n = 300
    t = np.arange(n)
    loss = np.where(t < 100, 2.3 - 1.5 * t / 100, 0.8 + 2.0 * (t - 100) / 200) * rng.lognormal(0, 0.03, n)
    modules = [ModuleInfo("0", "Linear"), ModuleInfo("1", "Tanh"), ModuleInfo("2", "Linear")]
    sig = make(loss, modules=modules)
    rs = t[::5]
    sat = np.where(rs < 120, 0.05, 0.9)[:, None] * np.array([[0.0, 1.0, 0.0]])
    sig.layer["act_frac_saturated"] = as_table(sat.astype(np.float32), rs, ["0", "1", "2"])
    found = by_symptom(diagnose_signals(sig))
    assert "divergence" in found
    f = found["saturated_activations"]
    assert f.causes[0].id == "lr_too_high", [(c.id, c.confidence) for c in f.causes]


@pytest.mark.parametrize("seed", range(2))
def test_a_float64_model_beyond_float32s_range_is_not_called_non_finite(seed):
    """time_sequence_prediction (float64, LBFGS at LR 8): gradient norms of 1.2e54 are finite in
    the model but inf in the recorder's float32 records; "non-finite values ... check the data for
    NaN/Inf" sent the user looking for a NaN that did not exist."""
    rng = np.random.default_rng(seed)
    n = 60
    loss = healthy_loss(n, seed)
    loss[40:] = 10.0 ** np.linspace(5, 70, n - 40)            # finite: stored as float64
    grad = rng.lognormal(0, 0.1, n)
    grad[40:] = 10.0 ** np.linspace(5, 37, n - 40)
    grad[50:] = np.inf                                         # > 3.4e38: inf in a float32 record
    sig = make(loss, grad=grad)
    sig.scalars[fmt.SYS_NONFINITE_GRADS] = (np.arange(n), np.zeros(n))
    sig.meta["model"] = {"param_dtypes": {"float64": [0, 1, 2, 3]}}
    f = by_symptom(diagnose_signals(sig))["nan_inf"]
    assert f.facts.get("float32_overflow") and "beyond float32's range" in f.title
    assert all(fix.id != "check_data_nan" for fix in f.fixes)
    sig.meta["model"] = {"param_dtypes": {"float32": [0, 1, 2, 3]}}
    f = by_symptom(diagnose_signals(sig))["nan_inf"]
    assert not f.facts.get("float32_overflow") and "non-finite" in f.title


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_at_chance_with_normal_updates_asks_about_the_labels(seed):
    """Labels shuffled apart from the inputs (DeepDiagnosis' "accuracy not increasing"): the
    weights move normally, the loss stays at ln(10); fix 1 was "raise the learning rate 10x"."""
    rng = np.random.default_rng(seed)
    loss = np.log(10) * rng.lognormal(0, 0.03, 400)
    shuffled = by_symptom(diagnose_signals(make(loss, ratio=3e-3)))["no_progress"]
    assert shuffled.causes[0].id == "label_noise" and shuffled.fixes[0].id == "check_label_pairs"
    slow = by_symptom(diagnose_signals(make(loss, ratio=1e-6)))["no_progress"]
    assert slow.causes[0].id == "lr_too_low"


@pytest.mark.parametrize("seed", range(3))
def test_units_that_saturate_under_large_updates_blame_the_lr(seed):
    """AUTOTRAINER's oscillating case (tanh MLP, SGD 0.5 momentum 0.9): updates of 13 % of the
    weights a step drove the tanh units to their ends, and "replace tanh with ReLU" was the only
    advice; the same net at LR 0.05 saturates 3 %."""
    modules = [ModuleInfo("0", "Linear"), ModuleInfo("1", "Tanh"), ModuleInfo("2", "Linear")]
    sig = make(healthy_loss(300, seed), modules=modules, ratio=0.05)
    rs = np.arange(300)[::5]
    sat = np.where(rs < 100, 0.05, 0.9)[:, None] * np.array([[0.0, 1.0, 0.0]])
    sig.layer["act_frac_saturated"] = as_table(sat.astype(np.float32), rs, ["0", "1", "2"])
    f = by_symptom(diagnose_signals(sig))["saturated_activations"]
    assert f.causes[0].id == "lr_too_high", [(c.id, c.confidence) for c in f.causes]
