"""The advisor on real recorded training runs (tests/scenarios.py): every planted pathology
found with the right symptom and top-ranked cause, and no warning on any healthy run, in every
seed and CPU thread count (tests/scenario_runs.py records the grid once per session)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from trainspect.analysis import diagnose, open_run  # noqa: E402
from trainspect.analysis.vocab import Severity  # noqa: E402
from tests.scenario_runs import grid  # noqa: E402
from tests.scenario_pending import PENDING  # noqa: E402
from tests.scenarios import SCENARIOS, digits, mlp, train  # noqa: E402

# Scenarios in PENDING wait for their rule (the reason is there); the others are asserted.
PATHOLOGIES = [n for n, s in SCENARIOS.items() if s.symptom is not None and n not in PENDING]
HEALTHY = [n for n, s in SCENARIOS.items() if s.symptom is None and n not in PENDING]
ids = lambda key: key.id  # noqa: E731

# The first test here records the whole grid (every scenario x seed x thread count) in parallel
# worker processes; that is minutes on 2 busy cores, so the per-test hang guard is wider here.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def runs(scenario_runs):
    scenario_runs.ensure(grid(SCENARIOS))
    return scenario_runs


_FINDINGS: dict = {}


def findings_of(runs, key):
    if key not in _FINDINGS:
        with open_run(runs.path(key.name, key.seed, key.threads)) as run:
            _FINDINGS[key] = diagnose(run)
    return _FINDINGS[key]


def first_finding(runs, key, symptom):
    found = findings_of(runs, key)
    hit = next((f for f in found if f.symptom == symptom), None)
    assert hit is not None, f"{key.id}: expected {symptom}, got {[f.symptom for f in found]}"
    return hit


def test_suite_covers_every_symptom():
    from trainspect.analysis.advisor.registry import REGISTRY
    # symptoms across the ranks of a distributed run: tests/test_rank_advisor.py (torchrun jobs)
    # step_time_growth reads wall-clock step times, which a planted run would take from this
    # machine's load: tests/test_trial18_step_time_growth.py plants them through log_many's times
    wall_clock = {"step_time_growth"}
    assert {SCENARIOS[n].symptom for n in PATHOLOGIES} == {s.id for s in REGISTRY if s.scope == "run"} - wall_clock


def test_suite_is_wide_enough():
    """Issue 12: >= 30 planted runs over every model kind, >= 10 healthy runs that look scary;
    pending scenarios are named in SCENARIOS."""
    planted = [s for s in SCENARIOS.values() if s.symptom]
    assert len(planted) >= 30 and len(SCENARIOS) - len(planted) >= 10
    assert set(PENDING) <= set(SCENARIOS)


@pytest.mark.parametrize("key", grid(PATHOLOGIES), ids=ids)
def test_planted_pathology_is_found_with_its_cause(key, runs):
    scenario = SCENARIOS[key.name]
    finding = first_finding(runs, key, scenario.symptom)
    assert Severity(finding.severity).rank >= Severity(scenario.severity).rank
    assert finding.causes[0].id in scenario.causes, [(c.id, c.confidence) for c in finding.causes]
    assert finding.evidence and finding.evidence[0].text
    assert finding.fixes and finding.confirm
    assert finding.first_step is not None and finding.first_step <= finding.last_step


@pytest.mark.parametrize("key", grid(HEALTHY), ids=ids)
def test_healthy_run_has_no_warning(key, runs):
    loud = [(f.symptom, f.title) for f in findings_of(runs, key) if f.severity != "info"]
    assert not loud, f"{key.id}: false alarm {loud}"


@pytest.mark.parametrize("key", grid(["nan_from_huge_lr"]), ids=ids)
def test_nan_finding_names_first_step_and_layer(key, runs):
    f = first_finding(runs, key, "nan_inf")
    assert f.severity == "error"
    assert 30 < f.first_step < 150          # the run is healthy for its first 30 steps
    assert f.layers and f.layers[0] == "0.weight"


@pytest.mark.parametrize("key", grid(["layer_missing_from_optimizer"]), ids=ids)
def test_frozen_layer_names_the_missing_parameters(key, runs):
    f = first_finding(runs, key, "frozen_layers")
    assert f.layers == ["0.weight", "0.bias"]
    assert "0.weight (Linear), 0.bias (Linear)" in f.title


@pytest.mark.parametrize("key", grid(["overfit_small_noisy_train_set"]), ids=ids)
def test_overfitting_points_at_best_validation_step(key, runs):
    """The checkpoint to keep is the lowest validation loss logged (the running median's best
    step pointed at a checkpoint that was not the best: 0.0557 at step 230, 0.0506 at 131)."""
    f = first_finding(runs, key, "overfitting")
    with open_run(runs.path(key.name, key.seed, key.threads)) as run:
        val = run.scalar(run.loss_roles()["val"])
    finite = np.isfinite(val.values)
    best = int(val.steps[finite][int(np.argmin(val.values[finite]))])
    assert f.fixes[0].text == f"keep the checkpoint from step {best} (lowest validation loss logged)"


def _train_partial(path, steps, crash=False):
    import torch
    from trainspect.recorder import Recorder
    torch.set_num_threads(1)
    torch.manual_seed(30)
    model = mlp([64, 128, 64, 10])
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)     # LR too low: a flat loss
    rec = Recorder(str(path), name="partial", flush_every=0.2, stats_every=5, snapshot_every=25)
    if crash:
        with pytest.raises(RuntimeError):
            with rec:
                train(rec, model, opt, steps=steps)
                raise RuntimeError("training crashed")
        return None
    train(rec, model, opt, steps=steps)
    rec.flush()
    return rec


def test_live_run_is_diagnosed_while_recording(tmp_path):
    rec = _train_partial(tmp_path / "live.h5", steps=120)
    try:
        with open_run(tmp_path / "live.h5") as run:
            assert run.status().state == "live"
            findings = diagnose(run)
        assert "no_progress" in {f.symptom for f in findings}
    finally:
        rec.close()


def test_crashed_run_is_diagnosed(tmp_path):
    _train_partial(tmp_path / "crash.h5", steps=120, crash=True)
    with open_run(tmp_path / "crash.h5") as run:
        assert run.status().state == "crashed"
        findings = diagnose(run)
    f = next(f for f in findings if f.symptom == "no_progress")
    assert f.causes[0].id == "lr_too_low"


def test_short_run_says_nothing_loud(tmp_path):
    import torch
    from trainspect.recorder import Recorder
    torch.set_num_threads(1)
    model = mlp([64, 32, 10])
    with Recorder(str(tmp_path / "short.h5"), name="short") as rec:
        train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-5), steps=10, data=digits())
    with open_run(tmp_path / "short.h5") as run:
        assert [f for f in diagnose(run) if f.severity != "info"] == []


@pytest.mark.parametrize("key", grid(["negative_bias_dead_relu"]), ids=ids)
def test_findings_name_layers_with_their_type(key, runs):
    dead = first_finding(runs, key, "dead_units")
    assert dead.title.startswith("dead ReLUs: 100% of the units of layer 1 (ReLU) never fire"), dead.title
    assert dead.layers[0] == "1"                       # raw module name for the app


@pytest.mark.parametrize("key", grid(PATHOLOGIES), ids=ids)
def test_fixes_fit_the_model_and_never_repeat(key, runs):
    """Read as a user would: no advice about activations the model does not have, none twice."""
    from trainspect.analysis.advisor.causes import FIX_BOUNDED_TO_RELU, FIX_RELU_TO_LEAKY, RECURRENT_TYPES
    with open_run(runs.path(key.name, key.seed, key.threads)) as run:
        types = {m.type for m in run.modules}
    findings = findings_of(runs, key)
    for f in findings:
        ids, texts = [x.id for x in f.fixes], [x.text for x in f.fixes]
        assert len(ids) == len(set(ids)), (f.symptom, texts)
        assert sum(t.startswith("clip gradients") for t in texts) <= 1, (f.symptom, texts)
        if not types & {"Sigmoid", "Tanh"}:
            assert FIX_BOUNDED_TO_RELU not in f.fixes, (f.symptom, texts)
        if not types & ({"Sigmoid", "Tanh"} | RECURRENT_TYPES):   # nn.RNN/LSTM have tanh/sigmoid inside
            assert not any("Xavier" in x for x in texts), (f.symptom, texts)
        if types & RECURRENT_TYPES and not types & {"ReLU", "ReLU6", "RReLU"}:
            assert not any("init for ReLU layers" in x for x in texts), (f.symptom, texts)
        if "dead_units" not in {g.symptom for g in findings}:
            assert FIX_RELU_TO_LEAKY not in f.fixes, (f.symptom, texts)
        if f.symptom != "nan_inf":
            assert "check_data_nan" not in ids, (f.symptom, texts)
        if f.symptom != "loss_spikes":
            assert not any("spike" in x for x in texts), (f.symptom, texts)
