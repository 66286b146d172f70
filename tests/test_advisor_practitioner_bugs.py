"""The advisor on bugs practitioners make (sweep of 2026-12-06): clipping far below the
gradients' norm and weight decay that wiped out the weights were read as "LR too low" / "bad
init"; an output Softmax was named but its removal never advised; a StepLR stepped per batch
read "cut the LR 9671406556917033397649408x" with "raise the LR" first; batches of one whose LR
blew a layer dead were taken for dead-from-init ReLUs (ERROR); wording that contradicted itself."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor import loss_rules
from trainspect.analysis.advisor import weight_rules as weight
from trainspect.analysis.advisor.symptoms.dead_units import _one_sample_batches
from trainspect.analysis.advisor.tables import as_table

from tests.scenario_runs import grid

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.timeout(1800)

SCENARIOS = ("clip_far_below_gradients", "adam_weight_decay_one", "softmax_before_cross_entropy",
             "lr_decayed_too_early", "missing_zero_grad")


@pytest.fixture(scope="module")
def runs(scenario_runs):
    from tests.scenarios import SCENARIOS as ALL
    scenario_runs.ensure(grid({n: ALL[n] for n in SCENARIOS}, seeds=(0, 1)))
    return scenario_runs


def _finding(runs, name, seed, symptom):
    with open_run(runs.path(name, seed, 1)) as run:
        found = diagnose(run)
    hit = next((f for f in found if f.symptom == symptom), None)
    assert hit is not None, [f.symptom for f in found]
    return hit


@pytest.mark.parametrize("seed", [0, 1])
def test_tight_clipping_is_named_with_the_norms_not_a_low_lr(runs, seed):
    f = _finding(runs, "clip_far_below_gradients", seed, "no_progress")
    assert f.causes[0].id == "clipping_too_tight"
    assert "lr_too_low" not in [c.id for c in f.causes[:2]]
    assert f.fixes[0].id == "raise_clip_norm" and "0.0001" in f.fixes[0].text   # the max_norm the run clipped to


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_decay_that_wiped_the_weights_is_named_not_bad_init(runs, seed):
    f = _finding(runs, "adam_weight_decay_one", seed, "no_progress")
    assert f.causes[0].id == "weight_decay_too_strong"
    assert "(now 1)" in f.fixes[0].text
    assert any(x.id == "decoupled_decay" for x in f.fixes)      # Adam: AdamW decouples the decay
    with open_run(runs.path("adam_weight_decay_one", seed, 1)) as run:
        assert "symmetric_weights" not in [g.symptom for g in diagnose(run)]   # rows ~0, not a symmetric init


@pytest.mark.parametrize("seed", [0, 1])
def test_output_softmax_before_cross_entropy_is_removed_first(runs, seed):
    f = _finding(runs, "softmax_before_cross_entropy", seed, "early_plateau")
    assert f.causes[0].id == "activation_choice"
    assert f.fixes[0].id == "output_activation" and "Softmax" in f.fixes[0].text
    assert "remove the output activation" in f.confirm


@pytest.mark.parametrize("seed", [0, 1])
def test_an_lr_cut_1000x_puts_the_schedule_first(runs, seed):
    f = _finding(runs, "lr_decayed_too_early", seed, "early_plateau")
    assert f.causes[0].id == "lr_too_low"
    assert f.fixes[0].id == "check_lr_schedule" and "1e+03x" in f.fixes[0].text, f.fixes[0].text
    assert "sys/lr" in f.confirm


@pytest.mark.parametrize("seed", [0, 1])
def test_missing_zero_grad_is_confirmed_by_adding_it(runs, seed):
    """The confirm line was the frozen-layers one ("print the optimizer's parameter names")."""
    f = _finding(runs, "missing_zero_grad", seed, "exploding_gradients")
    assert f.fixes[0].id == "zero_grad"
    assert "zero_grad()" in f.confirm and "parameter names" not in f.confirm


def test_collapsed_matrix_is_not_a_symmetric_one():
    """Rows told apart in the first snapshot and all ~0 in the last: shrunk, not symmetric.
    A matrix whose rows were identical from the first snapshot still is."""
    rng = np.random.default_rng(3)
    data = np.zeros((2, 1, 32, 32), dtype=np.float32)
    data[0, 0, :16, :8] = rng.normal(0, 0.1, (16, 8))
    data[1, 0, :16, :8] = 0.0
    shapes = np.array([[16, 8]])
    assert weight.detect_symmetric([0, 400], data, shapes, ["0.weight"]) is None
    data[0, 0, :16, :8] = 0.05
    assert weight.detect_symmetric([0, 400], data, shapes, ["0.weight"]) is not None


def test_one_sample_batches_seen_before_a_layer_died():
    """Batch size 1: the two statistics agree in every record; a blow-up at record 30 makes a
    layer all dead. The records before it still show the one-sample signature."""
    rng = np.random.default_rng(0)
    share = rng.uniform(0.3, 0.7, (64, 3))
    share[30:, 1] = 1.0
    assert _one_sample_batches(as_table(share), as_table(share.copy()))
    # real batches: whole-batch dead share below the per-output share
    assert not _one_sample_batches(as_table(share * 0.5), as_table(share))
    # every record with a layer all dead (biases of -10): no evidence of one-sample batches
    dead = share.copy()
    dead[:, 0] = 1.0
    assert not _one_sample_batches(as_table(dead), as_table(dead.copy()))


def test_divergence_from_the_start_does_not_call_a_higher_level_its_best():
    rng = np.random.default_rng(1)
    t = np.arange(500)
    v = np.r_[np.full(5, 2.0), np.linspace(2.4, 2.9, 495)] + rng.normal(0, 0.02, 500)
    f = loss_rules.detect_divergence(t, v)
    assert f is not None
    assert "(its start)" in f.title and "rose from its best" not in f.evidence[0].text
    assert "never went below its initial level" in f.evidence[0].text


def test_no_progress_says_worse_for_a_loss_that_ended_higher():
    rng = np.random.default_rng(2)
    t = np.arange(400)
    v = 2.3 + 0.08 * t / 400 + rng.normal(0, 0.05, 400)
    f = loss_rules.detect_no_progress(t, v)
    assert f is not None
    assert "% worse" in f.evidence[0].text and "-" not in f.evidence[0].text.split(":")[-1].split("%")[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vanishing_gradients_that_underflow_to_zero_in_the_first_layers(seed):
    """A 200-layer tanh MLP: the gradient shrinks geometrically and the first layers get exactly
    0 (below float32's range). Read as "frozen layers: optimizer setup", vanishing never said.
    A dead layer's exact zeros behind normal-sized gradients are no vanishing."""
    from trainspect.analysis.advisor.gradient_rules import detect_vanishing
    rng = np.random.default_rng(seed)
    n_layers, records = 40, 60
    depth = np.arange(n_layers)
    level = 0.05 * 10.0 ** (-(n_layers - 1 - depth) * 1.3)           # 1e-50 at the first layer
    g = (level * rng.lognormal(0, 0.3, (records, n_layers))).astype(np.float32)   # float32 underflows to 0
    assert (g[:, 0] == 0).all() and (g[:, -1] > 0).all()
    layers = [f"{i}.weight" for i in range(n_layers)]
    shapes, numel = [(16, 16)] * n_layers, [256] * n_layers
    f = detect_vanishing(np.arange(records), g, layers, shapes, numel)
    assert f is not None and "exactly 0" in f.title
    healthy = (0.05 * rng.lognormal(0, 0.3, (records, n_layers))).astype(np.float32)
    healthy[:, :5] = 0.0                                               # cut off behind a dead layer
    assert detect_vanishing(np.arange(records), healthy, layers, shapes, numel) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_that_fell_far_and_came_back_up_is_no_plateau(seed):
    """0.655 -> 0.02 by step 190, then blown back up to 0.6: "stalled at 0.605 from step 1"
    contradicted the curve (the divergence said it right)."""
    rng = np.random.default_rng(seed)
    t = np.arange(400)
    level = np.where(t < 190, 0.655 * np.exp(-t / 40), 0.02 + 0.58 * (1 - np.exp(-(t - 190) / 20)))
    v = level * rng.lognormal(0, 0.1, 400)
    assert loss_rules.detect_early_plateau(t, v) is None
    assert loss_rules.detect_divergence(t, v) is not None
    stall = np.r_[2.3 * np.exp(-t[:100] / 20) + 1.46 * (1 - np.exp(-t[:100] / 20)), np.full(300, 1.46)]
    assert loss_rules.detect_early_plateau(t, stall * rng.lognormal(0, 0.02, 400)) is not None


def _transformer_signals(warmup: bool, seed: int):
    """A post-LN transformer's signals: the input-side gradients vanish (1e-9 of the head's)."""
    from trainspect.analysis.run import ModuleInfo, ParamInfo

    from tests.test_advisor_causes import make
    rng = np.random.default_rng(seed)
    params = [ParamInfo("pos", "", (1, 64, 32), 2048)]
    modules = [ModuleInfo("emb", "Embedding")]
    for i in range(6):
        params += [ParamInfo(f"enc.layers.{i}.linear1.weight", f"enc.layers.{i}.linear1", (64, 32), 2048),
                   ParamInfo(f"enc.layers.{i}.linear2.weight", f"enc.layers.{i}.linear2", (32, 64), 2048)]
        modules += [ModuleInfo(f"enc.layers.{i}.linear1", "Linear"), ModuleInfo(f"enc.layers.{i}.linear2", "Linear"),
                    ModuleInfo(f"enc.layers.{i}.self_attn.out_proj", "NonDynamicallyQuantizableLinear"),
                    ModuleInfo(f"enc.layers.{i}.norm1", "LayerNorm")]
    params.append(ParamInfo("head.weight", "head", (10, 32), 320))
    modules.append(ModuleInfo("head", "Linear"))
    n = 300
    depth = np.linspace(-9, -1, len(params))
    grads = (10.0 ** depth) * rng.lognormal(0, 0.2, (n, len(params)))
    lr = np.minimum(1e-2 * (np.arange(n) + 1) / 50, 1e-2) if warmup else np.full(n, 1e-2)
    loss = 2.43 - 0.35 * (1 - np.exp(-np.arange(n) / 10)) + rng.normal(0, 0.02, n)
    return make(loss, lr=lr, layer_grads=grads, modules=modules, params=params)


@pytest.mark.parametrize("seed", [0, 1])
def test_vanishing_gradients_in_a_transformer_without_warmup_is_not_missing_skips(seed):
    """A 6-block post-LN transformer at its full LR from step 0: "depth without skip connections
    (70%): add residual connections" to a model made of residual blocks. Without a warm-up the
    LR (warm-up first) is named; with one, the depth is not blamed either."""
    from trainspect.analysis.advisor.diagnose import diagnose_signals
    found = {f.symptom: f for f in diagnose_signals(_transformer_signals(False, seed))}
    f = found["vanishing_gradients"]
    assert f.causes[0].id == "lr_too_high" and "warm-up" in f.causes[0].why
    assert f.fixes[0].id == "lr_warmup"
    warmed = {f.symptom: f for f in diagnose_signals(_transformer_signals(True, seed))}["vanishing_gradients"]
    assert warmed.causes[0].id != "depth_without_skip_connections"


def test_output_projections_are_not_judged_as_pre_activations():
    from trainspect.analysis.advisor.functional_acts import functional_candidates
    modules = ["emb", "enc.layers.0.linear1", "enc.layers.0.linear2", "mlp.c_fc", "mlp.c_proj", "fc2", "head"]
    types = ["Embedding", "Linear", "Linear", "Linear", "Linear", "Linear", "Linear"]
    assert functional_candidates(types, modules) == [1, 3, 5]      # a plain MLP's fc2 feeds its F.relu
    assert functional_candidates(types) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_inputs_of_a_run_that_trains_are_a_note_with_the_right_words(seed):
    """pytorch/examples' GCN row-normalises Cora's bag of words (RMS 0.005) and trains well:
    WARN "inputs are not standardised ... make the first layer's pre-activations huge", and
    fix 1 "subtract the mean" would make the sparse features dense."""
    from trainspect.analysis.advisor.diagnose import diagnose_signals

    from tests.test_advisor_causes import healthy_loss, make
    rng = np.random.default_rng(seed)
    found = {f.symptom: f for f in diagnose_signals(make(healthy_loss(300, seed), inputs=(0.0007, 0.005)))}
    f = found["unnormalized_inputs"]
    assert f.severity == "info" and "far below unit scale" in f.title
    assert "huge" not in f.causes[0].why and "no mean subtraction" in f.fixes[0].text
    flat = 2.3 + rng.normal(0, 0.01, 300)
    stalled = {f.symptom: f for f in diagnose_signals(make(flat, inputs=(0.0007, 0.005)))}
    assert stalled["unnormalized_inputs"].severity == "warning"


@pytest.mark.parametrize("seed", [0, 1])
def test_no_clipping_advice_to_a_run_that_clips(seed):
    """nanoGPT clips at 1.0 (grad_clip) and its diverging run was told "clip gradients (e.g.
    clip_grad_norm_ at 1.0)": the recorder had the applied norm capped at 1.0 all along."""
    from trainspect.analysis.advisor.diagnose import diagnose_signals
    from trainspect.recorder import format as fmt

    from tests.test_advisor_causes import make
    rng = np.random.default_rng(seed)
    n = 400
    t = np.arange(n)
    loss = np.where(t < 150, 2.3 * np.exp(-t / 40) + 0.2, 0.3 + 0.02 * (t - 150)) * rng.lognormal(0, 0.03, n)
    grad = rng.lognormal(0.5, 0.5, n)
    for clipped in (False, True):
        sig = make(loss, grad=grad, lr=np.full(n, 0.1))
        if clipped:
            sig.scalars[fmt.SYS_GRAD_NORM_POST_CLIP] = (t, np.minimum(grad, 1.0))
        f = {g.symptom: g for g in diagnose_signals(sig)}["divergence"]
        assert any(x.id == "clip_grads" for x in f.fixes) != clipped, [x.text for x in f.fixes]
