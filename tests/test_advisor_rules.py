"""Advisor rules on synthetic arrays: each fires on its pathology and stays silent on
healthy noisy curves (several seeds, every-step and every-50-steps sampling)."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.advisor import activation_rules as act
from analysis.advisor import gradient_rules as grad
from analysis.advisor import input_rules as inp
from analysis.advisor import loss_rules as loss
from analysis.advisor import nan_rules as nan
from analysis.advisor import weight_rules as weight
from analysis.advisor.causes import Context, attach
from analysis.findings import Finding

LOSS_RULES = [loss.detect_divergence, loss.detect_oscillation, loss.detect_spikes, loss.detect_no_progress,
              loss.detect_early_plateau]


def healthy_curve(n=2000, seed=0, noise=0.35, floor=0.02):
    """Exponential decay from 2.3 with heavy multiplicative minibatch noise (lognormal)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = floor + 2.3 * np.exp(-t / (n / 8))
    return t, level * rng.lognormal(0.0, noise, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("every", [1, 50])
def test_loss_rules_silent_on_healthy_noisy_curves(seed, every):
    t, v = healthy_curve(n=5000, seed=seed)
    t, v = t[::every], v[::every]
    for rule in LOSS_RULES:
        assert rule(t, v) is None, rule.__name__


def test_divergence_found_and_located():
    t, v = healthy_curve()
    v = v.copy()
    v[1200:] *= np.exp((t[1200:] - 1200) / 150.0)          # the loss climbs from step 1200 on
    f = loss.detect_divergence(t, v)
    assert f is not None and f.symptom == "divergence"
    assert 1000 <= f.first_step <= 1300          # where the rise began (the best level)
    assert loss.detect_no_progress(t, v) is None


def test_oscillation_found_but_single_bump_is_not():
    t, v = healthy_curve()
    bumps = 0.8 * (np.sin(t / 60.0) > 0.6) * (t > 500)     # the level jumps up again and again
    f = loss.detect_oscillation(t, v + bumps)
    assert f is not None and len(f.evidence[0].steps) >= 2
    one = v + 0.8 * ((t > 900) & (t < 960))
    assert loss.detect_oscillation(t, one) is None


def test_spikes_found_with_their_steps():
    t, v = healthy_curve(seed=3)
    v = v.copy()
    v[[700, 1300, 1800]] = 8.0
    f = loss.detect_spikes(t, v)
    assert f is not None and f.evidence[0].steps == [700, 1300, 1800]
    assert f.severity == "warning"


def test_no_progress_on_flat_noise_and_not_on_short_series():
    rng = np.random.default_rng(1)
    t = np.arange(300)
    v = 2.30 * rng.lognormal(0, 0.01, 300)
    assert loss.detect_no_progress(t, v).symptom == "no_progress"
    assert loss.detect_no_progress(t[:15], v[:15]) is None


def test_early_plateau_vs_fast_convergence():
    t = np.arange(1000)
    rng = np.random.default_rng(2)
    stalled = (1.0 + 1.3 * np.exp(-t / 40)) * rng.lognormal(0, 0.05, 1000)
    assert loss.detect_early_plateau(t, stalled).symptom == "early_plateau"
    converged = (0.01 + 2.3 * np.exp(-t / 40)) * rng.lognormal(0, 0.05, 1000)
    assert loss.detect_early_plateau(t, converged) is None


def test_overfitting_needs_sustained_val_rise_while_train_falls():
    t = np.arange(2000)
    train = 0.01 + 2.3 * np.exp(-t / 200)
    vs = np.arange(0, 2000, 50)
    rng = np.random.default_rng(4)
    val_u = (0.5 + 1.8 * np.exp(-vs / 200) + 0.0004 * np.maximum(vs - 600, 0)) * rng.lognormal(0, 0.01, vs.size)
    f = loss.detect_overfitting(t, train, vs, val_u)
    assert f is not None and 400 <= f.first_step <= 900
    val_flat = (0.5 + 1.8 * np.exp(-vs / 200)) * rng.lognormal(0, 0.03, vs.size)
    assert loss.detect_overfitting(t, train, vs, val_flat) is None
    rising_train = train + 0.001 * t                    # both rise: divergence, not overfitting
    assert loss.detect_overfitting(t, rising_train, vs, val_u) is None


def test_loss_rules_use_the_part_before_nan():
    t, v = healthy_curve()
    v = v.copy()
    v[1500:] = np.nan
    for rule in LOSS_RULES:
        assert rule(t, v) is None


def test_nan_rule_reports_first_step_and_first_layer():
    steps = np.arange(100)
    counts = np.zeros((100, 3))
    counts[60:, 1:] = 5                      # layers 1 and 2 go non-finite at step 60
    loss_values = np.ones(100)
    loss_values[61:] = np.nan
    no_grad = np.full((100, 3), np.nan)      # NaN norms with 0 non-finite entries: "no gradient", not NaN
    f = nan.detect_nan_inf({"train/loss": (steps, loss_values)},
                           {"grad_nonfinite": (steps, counts, ["a.w", "b.w", "c.w"]),
                            "weight_norm": (steps, no_grad, ["a.w", "b.w", "c.w"])})
    assert f.first_step == 60 and f.layers == ["b.w", "c.w"] and f.severity == "error"
    assert nan.detect_nan_inf({"train/loss": (steps, np.ones(100))}, {}) is None


SHAPES = [(64, 64), (64,), (64, 64), (64,), (10, 64), (10,)]
NUMEL = [int(np.prod(s)) for s in SHAPES]
LAYERS = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def test_vanishing_gradients_vs_healthy_depth_profile():
    rng = np.random.default_rng(0)
    healthy = rng.lognormal(0, 0.3, (200, 6)) * 0.1
    assert grad.detect_vanishing(np.arange(200), healthy, LAYERS, SHAPES, NUMEL) is None
    vanishing = healthy.copy()
    vanishing[:, 0] *= 1e-6
    f = grad.detect_vanishing(np.arange(200), vanishing, LAYERS, SHAPES, NUMEL)
    assert f is not None and f.layers == ["0.weight", "4.weight"]
    zero = healthy.copy()
    zero[:, 0] = 0.0                          # nothing flows: frozen_layers' business
    assert grad.detect_vanishing(np.arange(200), zero, LAYERS, SHAPES, NUMEL) is None


def test_exploding_when_gradients_dwarf_weights_or_keep_growing():
    steps = np.arange(200)
    w_steps = steps[::5]
    weights = np.ones((len(w_steps), 6))
    small = np.full((200, 6), 0.05)
    assert grad.detect_exploding(steps, small, w_steps, weights, LAYERS, SHAPES) is None
    f = grad.detect_exploding(steps, small * 1000, w_steps, weights, LAYERS, SHAPES)
    assert f is not None and f.symptom == "exploding_gradients"
    growing = 0.1 * 1.05 ** steps
    f = grad.detect_exploding(steps, small, w_steps, weights, LAYERS, SHAPES, total_steps=steps, total_norm=growing)
    assert f is not None and f.evidence[0].series == "sys/grad_norm"


def test_frozen_layers_kinds():
    steps = np.arange(50)
    g = np.full((50, 3), 0.1)
    u = np.full((10, 3), 1e-3)
    assert grad.detect_frozen(steps, g, steps[::5], u, ["a", "b", "c"]) is None
    u2 = u.copy()
    u2[:, 0] = 0.0
    f = grad.detect_frozen(steps, g, steps[::5], u2, ["a", "b", "c"])
    assert f.severity == "warning" and f.layers == ["a"]
    g2 = g.copy()
    g2[:, 2] = np.nan                        # requires_grad=False: frozen on purpose, only info
    u3 = u.copy()
    u3[:, 2] = 0.0
    f = grad.detect_frozen(steps, g2, steps[::5], u3, ["a", "b", "c"])
    assert f.severity == "info" and f.layers == ["c"]


def test_dead_units_only_in_relu_modules():
    steps = np.arange(20)
    dead = np.full((20, 3), 0.05)
    nonpos = np.full((20, 3), 0.5)
    mods, types = ["0", "1", "2"], ["Linear", "ReLU", "Linear"]
    assert act.detect_dead_units(steps, dead, nonpos, mods, types) is None
    dead[:, 0] = 0.95                        # a Linear's outputs <= 0: a logit, not a dead unit
    assert act.detect_dead_units(steps, dead, nonpos, mods, types) is None
    dead[:, 1] = 0.8
    f = act.detect_dead_units(steps, dead, nonpos, mods, types)
    assert f.layers == ["1"] and act.dead_from_start(f)


def test_saturation_only_in_bounded_modules():
    steps = np.arange(20)
    sat = np.full((20, 2), 0.1)
    assert act.detect_saturation(steps, sat, ["0", "1"], ["Linear", "Tanh"]) is None
    sat[:, 0] = 0.9
    assert act.detect_saturation(steps, sat, ["0", "1"], ["Linear", "Tanh"]) is None
    sat[:, 1] = 0.7
    assert act.detect_saturation(steps, sat, ["0", "1"], ["Linear", "Tanh"]).layers == ["1"]


def test_symmetric_weights_from_snapshots():
    rng = np.random.default_rng(0)
    data = np.full((2, 2, 32, 32), np.nan, dtype=np.float32)
    data[:, 0, :16, :8] = rng.normal(0, 0.1, (2, 16, 8))            # random init: rows differ
    data[:, 1, :10, :16] = np.float16(0.02) + rng.normal(0, 1, (2, 1, 16)).astype(np.float16)  # identical rows
    shapes = np.array([[16, 8], [10, 16]])
    f = weight.detect_symmetric([0, 25], data, shapes, ["a.weight", "b.weight"])
    assert f is not None and f.layers == ["b.weight"]
    data[:, 1, :10, :16] = rng.normal(0, 0.1, (2, 10, 16))
    assert weight.detect_symmetric([0, 25], data, shapes, ["a.weight", "b.weight"]) is None


def test_update_ratio_level_uses_weight_matrices():
    ratios = np.full((10, 3), 1e-3)
    ratios[:, 1] = 0.5                       # a bias: ignored
    level, per = weight.update_ratio_level(np.arange(10), ratios, ["w1", "b1", "w2"], [(4, 4), (4,), (4, 4)])
    assert level == pytest.approx(1e-3) and set(per) == {"w1", "w2"}


def test_unnormalized_inputs():
    steps = np.arange(10)
    assert inp.detect_unnormalized(steps, np.full(10, 0.01), np.full(10, 1.0)) is None
    assert inp.detect_unnormalized(steps, np.full(10, 0.3), np.full(10, 0.4)) is None       # [0, 1] images
    assert inp.detect_unnormalized(steps, np.full(10, 78.0), np.full(10, 96.0)) is not None  # 0..255 pixels
    assert inp.detect_unnormalized(steps, np.full(10, 3.0), np.full(10, 0.5)) is not None    # offset


def _finding(symptom):
    return Finding(symptom=symptom, severity="warning", title=symptom, first_step=0, last_step=10)


def test_cause_ranking_uses_all_the_evidence():
    osc = attach(_finding("loss_oscillation"), Context(symptoms={"loss_oscillation"}, update_ratio=1e-1,
                                                       update_ratio_max=2e-1))
    assert osc.causes[0].id == "lr_too_high" and "ratio" in osc.causes[0].why
    assert osc.fixes[0] == "reduce the learning rate 10x"
    assert "LR/10" in osc.confirm
    flat = attach(_finding("no_progress"), Context(symptoms={"no_progress"}, update_ratio=1e-6, update_ratio_max=1e-6))
    assert flat.causes[0].id == "lr_too_low"
    sym = attach(_finding("no_progress"), Context(symptoms={"no_progress", "symmetric_weights", "frozen_layers"},
                                                  frozen_zero_grad=True, update_ratio=1e-3, update_ratio_max=1e-3))
    assert sym.causes[0].id == "bad_init"
    confidences = [c.confidence for c in sym.causes]
    assert confidences == sorted(confidences, reverse=True)


@pytest.mark.parametrize("symptom", ["nan_inf", "loss_oscillation", "exploding_gradients", "loss_spikes"])
def test_fixes_never_repeat_the_same_advice(symptom):
    from analysis.advisor.causes import _fix_key
    from analysis.findings import Finding

    ctx = Context(symptoms={symptom}, update_ratio=0.05, grad_growth_before_nan=1e6, loss_rise_before_nan=True)
    f = attach(Finding(symptom=symptom, severity="warning", title="t", first_step=0, last_step=1), ctx)
    keys = [_fix_key(x) for x in f.fixes]
    assert f.fixes and len(keys) == len(set(keys)), f.fixes
