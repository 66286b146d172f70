"""Advisor rules on synthetic arrays: each fires on its pathology and stays silent on
healthy noisy curves (several seeds, every-step and every-50-steps sampling)."""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis.advisor import activation_rules as act
from trainspect.analysis.advisor import gradient_rules as grad
from trainspect.analysis.advisor import input_rules as inp
from trainspect.analysis.advisor import loss_rules as loss
from trainspect.analysis.advisor import nan_rules as nan
from trainspect.analysis.advisor import weight_rules as weight
from trainspect.analysis.advisor.causes import Context, attach
from trainspect.analysis.advisor.symptoms.slow_convergence import detect_slow_convergence
from trainspect.analysis.findings import Finding

LOSS_RULES = [loss.detect_divergence, loss.detect_oscillation, loss.detect_spikes, loss.detect_no_progress,
              loss.detect_early_plateau, detect_slow_convergence]


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
    bouncing = v + 0.4 * (1 + np.sin(t / 50.0)) * (t > 300)   # after progress the level keeps bouncing up
    f = loss.detect_oscillation(t, bouncing)
    assert f is not None and len(f.evidence[0].steps) >= 2
    assert 300 <= f.first_step <= f.last_step
    one = v + 0.8 * ((t > 900) & (t < 960))
    assert loss.detect_oscillation(t, one) is None


def test_oscillation_silent_on_flat_noisy_loss():
    """A loss that never made progress does not oscillate (0.495 -> 0.502 with minibatch noise)."""
    rng = np.random.default_rng(4)
    t = np.arange(3000)
    flat = 0.5 * rng.lognormal(0, 0.08, t.size) + 0.01 * np.sin(t / 30.0)
    assert loss.detect_oscillation(t, flat) is None


def test_oscillation_is_not_divergence():
    """A level that climbs and never comes back is divergence's finding, not oscillation's."""
    t, v = healthy_curve()
    v = v.copy()
    v[1000:] += 0.004 * (t[1000:] - 1000)
    assert loss.detect_oscillation(t, v) is None
    assert loss.detect_divergence(t, v) is not None


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


@pytest.mark.parametrize("seed", range(3))
def test_slow_convergence_on_a_steady_descent_not_on_a_levelled_off_one(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(600)
    steady = (2.3 - 0.0008 * t) * rng.lognormal(0, 0.05, t.size)        # 2.3 -> 1.82, still falling
    f = detect_slow_convergence(t, steady)
    assert f is not None and f.severity == "info" and 400 <= f.first_step < f.last_step
    levelled = (1.8 + 0.5 * np.exp(-t / 60)) * rng.lognormal(0, 0.05, t.size)
    assert detect_slow_convergence(t, levelled) is None
    assert detect_slow_convergence(t, 2.3 * rng.lognormal(0, 0.05, t.size)) is None     # no progress at all


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
    # the file says "c" had requires_grad=False at watch(): frozen on purpose, not a finding
    assert grad.detect_frozen(steps, g2, steps[::5], u3, ["a", "b", "c"], frozen={"c"}) is None
    # it could train and never got a gradient: a layer the forward does not use
    f = grad.detect_frozen(steps, g2, steps[::5], u3, ["a", "b", "c"], frozen=set())
    assert f.severity == "info" and f.layers == ["c"] and "not used by the forward" in f.evidence[0].text


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


def test_dead_units_title_gives_the_worst_layer_its_own_figure():
    steps = np.arange(20)
    dead = np.full((20, 4), 0.05)
    nonpos = np.full((20, 4), 0.5)
    mods, types = ["0", "1", "2", "3"], ["Linear", "ReLU", "Linear", "ReLU"]
    dead[:, 1], dead[:, 3] = 0.6, 0.97
    f = act.detect_dead_units(steps, dead, nonpos, mods, types)
    assert f.layers == ["3", "1"] and "97% of the units of 3" in f.title, f.title
    assert "60% of units" in f.evidence[1].text and "50% of outputs <= 0" in f.evidence[1].text


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



def test_symmetric_weights_from_zero_weight_norms_skips_empty_weights():
    """Without snapshots an all-zero weight norm marks an all-zero matrix, but a weight with no
    elements (Linear(4, 0)) has norm 0 by definition: no finding for it."""
    steps = np.array([0, 50, 100])
    norms = np.array([[0.0, 0.0, 1.2], [0.0, 0.0, 1.1], [0.0, 0.0, 1.3]])
    layers = ["empty.weight", "zero.weight", "ok.weight"]
    f = weight.detect_symmetric([], None, None, [], weight_steps=steps, weight_norm=norms, param_layers=layers,
                                param_numel=[0, 12, 12])
    assert f is not None and f.layers == ["zero.weight"]
    assert (f.first_step, f.last_step) == (0, 100)        # the span the report and the app shade
    assert weight.detect_symmetric([], None, None, [], weight_steps=steps, weight_norm=norms[:, [0, 2]],
                                   param_layers=["empty.weight", "ok.weight"], param_numel=[0, 12]) is None

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


def _finding(symptom, **facts):
    return Finding(symptom=symptom, severity="warning", title=symptom, first_step=0, last_step=10, facts=facts)


def ctx_with(*symptoms, facts=None, **fields):
    """A Context in which ``symptoms`` were found (with ``facts`` per symptom) and ``fields`` hold."""
    facts = facts or {}
    ctx = Context(**fields)
    ctx.found = {s: _finding(s, **facts.get(s, {})) for s in symptoms}
    return ctx


def texts(f):
    return [x.text for x in f.fixes]


def ids_unique(f):
    ids = [x.id for x in f.fixes]
    return len(ids) == len(set(ids))


def test_cause_ranking_uses_all_the_evidence():
    osc = attach(_finding("loss_oscillation"), ctx_with("loss_oscillation", update_ratio=1e-1,
                                                       update_ratio_max=2e-1))
    assert osc.causes[0].id == "lr_too_high" and "ratio" in osc.causes[0].why
    assert osc.fixes[0].text == "reduce the learning rate 10x"
    assert "LR/10" in osc.confirm
    flat = attach(_finding("no_progress"), ctx_with("no_progress", update_ratio=1e-6, update_ratio_max=1e-6))
    assert flat.causes[0].id == "lr_too_low"
    sym = attach(_finding("no_progress"), ctx_with("no_progress", "symmetric_weights", "frozen_layers",
                                                   facts={"frozen_layers": {"zero_grad": True}},
                                                   update_ratio=1e-3, update_ratio_max=1e-3))
    assert sym.causes[0].id == "bad_init"
    confidences = [c.confidence for c in sym.causes]
    assert confidences == sorted(confidences, reverse=True)


@pytest.mark.parametrize("symptom", ["nan_inf", "loss_oscillation", "exploding_gradients", "loss_spikes"])
def test_fixes_never_repeat_the_same_advice(symptom):
    ctx = ctx_with(symptom, update_ratio=0.05)
    f = attach(Finding(symptom=symptom, severity="warning", title="t", first_step=0, last_step=1), ctx)
    assert f.fixes and ids_unique(f), f.fixes
    assert sum(x.startswith("clip gradients") for x in texts(f)) <= 1, texts(f)


# ------------------------------------------------------------ chunked tables (bounded memory)
from trainspect.analysis.advisor.causes import FIX_BOUNDED_TO_RELU, FIX_RELU_TO_LEAKY  # noqa: E402
from trainspect.analysis.labels import LayerLabels  # noqa: E402
from trainspect.analysis.advisor.tables import as_table  # noqa: E402


def test_table_summary_matches_whole_table_numpy():
    rng = np.random.default_rng(5)
    m = rng.normal(0, 1, (1000, 6)).astype(np.float32)
    m[:, 1] = 0.0                              # all zero
    m[:, 2] = np.nan                           # never a value
    m[700, 3] = np.inf
    m[650, 4] = np.nan
    m[:400, 5] = -1.0                          # first positive value late
    t = as_table(m, chunk_rows=64)             # 16 chunks
    s = t.summary
    assert s.all_zero.tolist() == [False, True, False, False, False, False]
    assert s.all_nan.tolist() == [False, False, True, False, False, False]
    assert s.first_inf[3] == 700 and s.first_nan[4] == 650 and s.first_nan[3] == -1
    assert s.first_positive[5] == 400 + int(np.argmax(m[400:, 5] > 0))
    assert np.array_equal(s.n_finite, np.isfinite(m).sum(axis=0))
    assert s.max_non_nan[3] == np.inf and s.max_non_nan[0] == m[:, 0].max()
    assert np.array_equal(t.columns([4, 0]), m[:, [4, 0]], equal_nan=True)
    assert np.array_equal(t.rows([999, 3, 3, 640]), m[[999, 3, 3, 640]], equal_nan=True)


def test_nan_in_last_chunk_found_with_exact_step_and_layer():
    rows, layers = 1000, ["0.weight", "0.bias", "2.weight", "2.bias"]
    steps = 10 + 3 * np.arange(rows)                      # steps are not row indices
    counts = np.zeros((rows, 4), np.float32)
    counts[997, 2] = 12                                   # last chunk of 8 (chunk_rows 128)
    weight_norm = np.ones((rows, 4), np.float32)
    weight_norm[998:, 3] = np.nan
    table = as_table(counts, steps, layers, chunk_rows=128)
    assert -(-rows // table.chunk_rows) > 1
    f = nan.detect_nan_inf({}, {"grad_nonfinite": table,
                                "weight_norm": as_table(weight_norm, steps, layers, chunk_rows=128)})
    assert f.first_step == int(steps[997]) and f.layers == ["2.weight"]
    assert f.evidence[0].series == "grad_nonfinite" and f.evidence[0].steps == [int(steps[997])]
    assert f.evidence[1].layer == "2.bias" and f.evidence[1].steps == [int(steps[998])]


def test_diagnose_reads_a_multi_chunk_run_and_finds_the_late_nan(tmp_path):
    """Through a real run file: the grads table spans several chunks and the NaN is in the last."""
    from trainspect.analysis import diagnose, open_run
    from trainspect.analysis.advisor.signals import extract
    from trainspect.recorder import format as fmt
    from trainspect.recorder.h5file import LayerLayout, RunFileWriter

    n_par, rows = 400, 3000                     # 1.2 M values: more than one 1 M-value chunk
    params = [(f"{i}.weight", str(i), (8, 8), 64) for i in range(n_par)]
    w = RunFileWriter(tmp_path / "wide.h5")
    w.start({"name": "wide", "schema_version": fmt.SCHEMA_VERSION},
            LayerLayout(params=params, modules=[(str(i), "Linear") for i in range(n_par)]))
    w.add_tags(["train/loss"])
    steps = np.arange(rows) * 2
    norms = np.full((rows, n_par), 0.1, np.float32)
    bad = np.zeros((rows, n_par), np.int32)
    bad[2990, 321] = 3                          # NaN gradient entries at one step, one layer
    norms[2990:, 321] = np.nan
    w.append_scalars(steps, np.zeros(rows), np.linspace(2.3, 0.1, rows), np.zeros(rows))
    w.append_records(fmt.GRADS, steps, {"norm": norms, "nonfinite": bad})
    w.flush(int(steps[-1]))
    w.close(last_step=int(steps[-1]))
    with open_run(tmp_path / "wide.h5") as run:
        table = extract(run).layer["grad_nonfinite"]
        assert table.chunk_rows < rows
        assert np.array_equal(table.steps, steps)
        findings = diagnose(run)
    f = next(f for f in findings if f.symptom == "nan_inf")
    assert f.first_step == 5980 and f.layers == ["321.weight"]
    assert "321.weight (Linear)" in f.title


# ------------------------------------------------------------ wording: layer names with their type
def test_layer_labels_name_index_modules_and_parameters_with_their_type():
    from trainspect.analysis.run import ModuleInfo, ParamInfo
    label = LayerLabels([ModuleInfo("0", "Linear"), ModuleInfo("1", "ReLU"), ModuleInfo("enc.fc", "Linear")],
                        [ParamInfo("0.weight", "0", (4, 4), 16), ParamInfo("enc.fc.bias", "enc.fc", (4,), 4)])
    assert label("1") == "layer 1 (ReLU)"
    assert label("enc.fc") == "enc.fc (Linear)"
    assert label("0.weight") == "0.weight (Linear)"
    assert label("enc.fc.bias") == "enc.fc.bias (Linear)"
    assert label("unknown") == "unknown"


def test_dead_units_title_uses_the_label():
    steps = np.arange(20)
    dead = np.full((20, 2), 0.05)
    dead[:, 1] = 1.0
    f = act.detect_dead_units(steps, dead, None, ["0", "1"], ["Linear", "ReLU"],
                              label=lambda n: f"layer {n} (ReLU)")
    assert f.title == "dead ReLUs: 100% of the units of layer 1 (ReLU) never fire"
    assert f.layers == ["1"] and f.evidence[0].layer == "1"        # raw names for the app to jump to
    assert f.evidence[0].text.startswith("layer 1 (ReLU): 100% of units")


# ------------------------------------------------------------ fixes that apply to this model
def test_dead_relu_fixes_do_not_suggest_replacing_sigmoid():
    f = attach(_finding("dead_units"), ctx_with("dead_units", has_relu=True))
    assert FIX_RELU_TO_LEAKY in f.fixes
    assert not any("sigmoid/tanh in hidden layers" in x for x in texts(f)), f.fixes
    assert not any("Xavier" in x for x in texts(f)), f.fixes       # no tanh/sigmoid in the model


def test_vanishing_with_sigmoid_suggests_relu_not_leaky_against_dying():
    f = attach(_finding("vanishing_gradients"), ctx_with("vanishing_gradients", has_bounded_acts=True,
                                                        n_weight_layers=10))
    assert f.fixes[0] == FIX_BOUNDED_TO_RELU and FIX_RELU_TO_LEAKY not in f.fixes
    assert ids_unique(f) and texts(f).count("add BatchNorm/LayerNorm between layers") == 1


def test_activation_advice_left_out_when_it_cannot_apply():
    # a ReLU net whose units are alive: neither "replace sigmoid" nor "so units cannot die"
    f = attach(_finding("no_progress"), ctx_with("no_progress", has_relu=True, lr_steps=np.arange(3),
                                                 lr_values=np.full(3, 0.1)))
    assert FIX_BOUNDED_TO_RELU not in f.fixes and FIX_RELU_TO_LEAKY not in f.fixes
    assert not any(x.startswith("check the LR schedule") for x in texts(f))     # constant LR


def test_overfitting_fixes_do_not_talk_about_spikes_or_repeat_the_checkpoint():
    ctx = ctx_with("overfitting", train_loss_near_zero=True)
    f = attach(_finding("overfitting"), ctx)
    assert texts(f)[0].startswith("keep the checkpoint from step 0")
    assert not any("spike" in x or x.startswith("stop early") or x.startswith("clip") for x in texts(f)), f.fixes


def test_lr_cannot_be_both_too_high_and_too_low():
    from trainspect.analysis.findings import Finding

    # A plateau after ReLUs died during training: the LR is too high, so "too low" must rank far below.
    ctx = ctx_with("early_plateau", "dead_units", facts={"dead_units": {"dead_from_start": False}}, has_relu=True)
    f = attach(Finding(symptom="early_plateau", severity="warning", title="t", first_step=0, last_step=9), ctx)
    conf = {c.id: c.confidence for c in f.causes}
    assert f.causes[0].id == "lr_too_high"
    assert conf.get("lr_too_low", 0) < 0.15


def test_grad_spike_evidence_backs_loss_spikes_only_when_the_gradient_spiked_too():
    rng = np.random.default_rng(3)
    steps = np.arange(400)
    calm = 1.0 + 0.05 * rng.standard_normal(400)
    assert grad.grad_spike_evidence([150, 300], steps, calm) is None      # noise never reaches z > 2.5
    spiky = calm.copy()
    spiky[[150, 301]] = 6.0                                                   # same step, and one step later
    ev = grad.grad_spike_evidence([150, 300], steps, spiky)
    assert ev is not None and ev.series == "sys/grad_norm"
    assert ev.steps == [150, 301] and "2 of the 2 loss-spike steps" in ev.text
    assert grad.grad_spike_evidence([50], steps, spiky) is None              # spikes elsewhere are not evidence
