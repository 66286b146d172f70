"""A training loss that repeats every epoch: the batches come in the same order (``periodic_loss``).

The scenario suite has the recorded cases (digits stored class by class, fed unshuffled: a
warning; one random order reused: a note at most; shuffled every epoch: nothing). Here: the
period found on synthetic losses, and the runs that repeat for other reasons.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.data_order import find_period, lr_cycles
from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.signals import Signals

SEEDS = (0, 1, 2)


def _level(n):
    return 2.0 * np.exp(-np.arange(n) / (n / 4)) + 0.1


def _fixed_order_loss(n, period, rng, difficulty=0.4, noise=0.1):
    """Per-batch losses: a trend, times each batch's own difficulty (the same batch at the same
    place of every epoch), times sampling noise."""
    pattern = rng.lognormal(0.0, difficulty, period)
    return _level(n) * np.resize(pattern, n) * rng.lognormal(0.0, noise, n)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [12, 50, 300])
def test_the_period_of_a_repeating_batch_order_is_found(seed, period):
    rng = np.random.default_rng(seed)
    n = 8 * period + 100
    found = find_period(np.arange(n), _fixed_order_loss(n, period, rng))
    assert found is not None and found["period"] == period
    assert not found["grouped"]     # batches whose difficulties are unrelated: mixed, not grouped


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loss_logged_every_ten_steps_reports_the_period_in_steps(seed):
    rng = np.random.default_rng(seed)
    values = _fixed_order_loss(400, 40, rng)
    found = find_period(np.arange(400) * 10, values)
    assert found is not None and found["period"] == 400


def _group_waves(rng, period):
    """One epoch's pattern of batches grouped alike, groups unlike: a random pattern smoothed
    (circularly) over ~9 batches, at unit spread."""
    raw = rng.normal(0.0, 1.0, period)
    smooth = np.convolve(np.concatenate([raw[-4:], raw, raw[:4]]), np.ones(9) / 9, mode="valid")
    return smooth / smooth.std()


@pytest.mark.parametrize("seed", SEEDS)
def test_batches_grouped_by_class_read_as_grouped(seed):
    """Long waves within the epoch (each class's batches together), wide swing: grouped."""
    rng = np.random.default_rng(seed)
    period, n = 60, 600
    waves = np.exp(0.8 * _group_waves(rng, period))
    found = find_period(np.arange(n), _level(n) * np.resize(waves, n) * rng.lognormal(0.0, 0.1, n))
    assert found is not None and found["period"] == period and found["grouped"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["iid", "autocorrelated", "heavy_tailed", "spikes"])
def test_shuffled_batches_have_no_period(seed, kind):
    rng = np.random.default_rng(seed)
    n = 3000
    if kind == "iid":
        noise = rng.normal(0, 0.2, n)
    elif kind == "autocorrelated":          # slow drifts of the level (AR(1) noise)
        noise = np.zeros(n)
        for i in range(1, n):
            noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 0.1)
    elif kind == "heavy_tailed":
        noise = 0.1 * rng.standard_t(2, n)
    else:
        noise = rng.normal(0, 0.1, n)
        noise[rng.choice(n, 8, replace=False)] += 3.0
    assert find_period(np.arange(n), _level(n) * np.exp(noise)) is None


@pytest.mark.parametrize("noise", [0.03, 0.1])
def test_a_short_run_of_random_batches_has_no_period(noise):
    """nanoGPT draws random offsets every step; on 99 steps the best of ~30 lags correlated 0.32
    by chance and read "the batches come in the same order every epoch" (90 %). About 1 short
    run in 40 did so; the thresholds now grow with the noise of a short series."""
    n = 99
    found = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        values = (2.5 + 2 * np.exp(-np.arange(n) / 30)) * np.exp(noise * rng.standard_normal(n))
        if find_period(np.arange(n), values) is not None:
            found.append(seed)
    assert found == []


def test_a_short_run_with_a_strong_repeat_still_has_its_period():
    rng = np.random.default_rng(0)
    values = _fixed_order_loss(120, 12, rng, difficulty=0.6, noise=0.05)
    found = find_period(np.arange(120), values)
    assert found is not None and found["period"] == 12


def test_too_few_cycles_are_not_a_period():
    rng = np.random.default_rng(0)
    values = _fixed_order_loss(250, 100, rng)        # 2.5 epochs, 2.25 of them judged
    assert find_period(np.arange(250), values) is None


def test_restarting_lr_schedules_are_told_apart_from_warm_up_and_decay():
    t = np.arange(600)
    restarts = 0.5 * (1 + np.cos(np.pi * (t % 100) / 100))
    warmup_cosine = np.where(t < 50, t / 50, 0.5 * (1 + np.cos(np.pi * (t - 50) / 550)))
    step_decay = 0.1 ** (t // 200)
    assert lr_cycles(restarts)
    assert not lr_cycles(warmup_cosine) and not lr_cycles(step_decay) and not lr_cycles(np.full(600, 1e-3))


def _periodic_signals(seed, lr=None, inputs=None):
    rng = np.random.default_rng(seed)
    n = 600
    steps = np.arange(n)
    scalars = {}
    if lr is not None:
        scalars["sys/lr"] = (steps, lr)
    if inputs is not None:
        scalars["sys/input_mean"] = (steps[::5], inputs[::5])
    return Signals(train_loss=("train/loss", steps, _fixed_order_loss(n, 30, rng)), scalars=scalars)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_repeating_loss_is_named_with_its_fix(seed):
    found = {f.symptom: f for f in diagnose_signals(_periodic_signals(seed))}
    f = found["periodic_loss"]
    assert f.facts["period"] == 30 and f.severity == "info"      # mixed batches: a note
    assert f.causes[0].id == "unshuffled_data" and "shuffle=True" in f.fixes[0].text
    peaks = f.evidence[0].steps
    assert len(peaks) == 3 and np.all(np.diff(peaks) == 30)       # the same place of each cycle
    loss = _periodic_signals(seed).train_loss[2]
    assert f.evidence[0].values == pytest.approx(list(loss[peaks]))   # points on the curve: the report circles them


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loss_that_follows_a_restarting_lr_is_not_blamed_on_the_data(seed):
    t = np.arange(600)
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (t % 30) / 30))
    found = {f.symptom for f in diagnose_signals(_periodic_signals(seed, lr=lr))}
    assert "periodic_loss" not in found


@pytest.mark.parametrize("seed", SEEDS)
def test_a_repeating_loss_on_the_same_batch_every_step_is_not_a_data_order(seed):
    """Full-batch training: the inputs never change, so nothing can repeat an order; with
    inputs that change from step to step the same loss is a data order."""
    same = {f.symptom for f in diagnose_signals(_periodic_signals(seed, inputs=np.full(600, 0.25)))}
    varied = {f.symptom for f in diagnose_signals(
        _periodic_signals(seed, inputs=np.random.default_rng(seed).normal(0, 0.01, 600)))}
    assert "periodic_loss" not in same and "periodic_loss" in varied


def _recorded(path, seed, order):
    """A small MLP on random class-structured data, in epochs, fed ``order``."""
    import torch
    from trainspect import Recorder

    torch.manual_seed(seed)
    centres = torch.randn(6, 16) * 2.0
    y = torch.arange(6).repeat_interleave(80)                   # stored class by class
    x = centres[y] + torch.randn(len(y), 16)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 6))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    step = 0
    with Recorder(path, stats_every=10) as rec:
        rec.watch(model, opt)
        for _ in range(16):
            perm = torch.arange(len(y)) if order == "sorted" else torch.randperm(len(y), generator=g)
            for start in range(0, len(y), 24):
                idx = perm[start:start + 24]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.detach()}, step=step)
                step += 1


@pytest.mark.parametrize("seed", SEEDS)
def test_a_recorded_run_over_data_stored_by_class_is_told_to_shuffle(tmp_path, seed):
    _recorded(tmp_path / "sorted.h5", seed, "sorted")
    _recorded(tmp_path / "shuffled.h5", seed, "shuffled")
    with open_run(tmp_path / "sorted.h5") as run:
        found = {f.symptom: f for f in diagnose(run)}
    assert "periodic_loss" in found and found["periodic_loss"].facts["period"] == 20
    assert found["periodic_loss"].causes[0].id == "unshuffled_data"
    with open_run(tmp_path / "shuffled.h5") as run:
        assert "periodic_loss" not in {f.symptom for f in diagnose(run)}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_language_model_read_in_order_is_told_that_is_expected(seed):
    """pytorch/examples' word_language_model reads its corpus in order every epoch (truncated
    BPTT): a note whose first fix says the repeat is expected there; a classifier's note does not."""
    from trainspect.analysis import ModuleInfo

    sig = _periodic_signals(seed)
    sig.modules = [ModuleInfo("encoder", "Embedding"), ModuleInfo("rnn", "LSTM"), ModuleInfo("decoder", "Linear")]
    lm = {f.symptom: f for f in diagnose_signals(sig)}["periodic_loss"]
    assert lm.severity == "info" and lm.fixes[0].id == "bptt_order_expected"
    classifier = {f.symptom: f for f in diagnose_signals(_periodic_signals(seed))}["periodic_loss"]
    assert all(fix.id != "bptt_order_expected" for fix in classifier.fixes)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_distributed_run_is_pointed_at_set_epoch_first(seed):
    """torchrun with a DistributedSampler and no sampler.set_epoch(epoch): every epoch repeats
    the first one's order, on every rank."""
    sig = _periodic_signals(seed)
    sig.meta = {"distributed": {"rank": 1, "world_size": 4}}
    f = {f.symptom: f for f in diagnose_signals(sig)}["periodic_loss"]
    ids = [fix.id for fix in f.fixes]
    assert ids[0] == "distributed_sampler" and "set_epoch" in f.fixes[0].text
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_signed_loss_that_repeats_in_waves_is_a_note_without_a_swing(seed):
    """A signed loss (an ELBO, a GAN term) has no ratio swing: a note, its text without NaN."""
    rng = np.random.default_rng(seed)
    period, n = 60, 600
    loss = np.resize(_group_waves(rng, period), n) - np.linspace(0, 2, n) + rng.normal(0.0, 0.1, n)
    f = {f.symptom: f for f in diagnose_signals(Signals(train_loss=("train/loss", np.arange(n), loss)))}
    found = f["periodic_loss"]
    assert found.facts["period"] == period and found.severity == "info" and found.facts["swing"] is None
    assert "nan" not in found.evidence[0].text


def _mild_waves_with_validation(seed, val_over_low, waves=True):
    """Batches grouped by class (waves over a 1.3-2.7x swing, narrower than 'grouped' alone needs)
    or a fixed mixed order, and a validation loss ending at ``val_over_low`` x the lowest training
    loss of the last cycle."""
    rng = np.random.default_rng(seed)
    period, n = 60, 600
    pattern = 0.15 * _group_waves(rng, period) if waves else rng.normal(0.0, 0.15, period)
    train = _level(n) * np.exp(np.resize(pattern, n)) * rng.lognormal(0.0, 0.03, n)
    val_steps = np.arange(period - 1, n, period)
    val = _level(n)[val_steps] * 1.0
    val *= val_over_low * train[-period:].min() / val[-1]
    return Signals(train_loss=("train/loss", np.arange(n), train), val_loss=("val/loss", val_steps, val))


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_batches_with_a_mild_swing_warn_when_validation_is_far_worse(seed):
    """Lightning on digits sorted by class, never shuffled (trial 17, F2): the loss swung 1.5x in
    waves, validation ended 1.7x the training loss's lowest in the cycle (0.94; 0.19 shuffled):
    an info note and exit 0. Grouped batches the model forgets between are a warning."""
    sig = _mild_waves_with_validation(seed, 2.0)
    found = find_period(sig.train_loss[1], sig.train_loss[2])
    assert found is not None and not found["grouped"] and np.exp(found["swing"]) < np.e   # a note before
    f = {f.symptom: f for f in diagnose_signals(sig)}["periodic_loss"]
    assert f.severity == "warning" and f.facts["grouped"] and f.causes[0].id == "unshuffled_data"
    assert any(e.series == "val/loss" for e in f.evidence)


@pytest.mark.parametrize("seed", SEEDS)
def test_mild_waves_with_validation_as_good_as_training_stay_a_note(seed):
    f = {f.symptom: f for f in diagnose_signals(_mild_waves_with_validation(seed, 1.1))}["periodic_loss"]
    assert f.severity == "info"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fixed_mixed_order_stays_a_note_whatever_validation_says(seed):
    """Unshuffled but i.i.d. batches (no waves): the order repeats, nothing is grouped."""
    found = {f.symptom: f for f in diagnose_signals(_mild_waves_with_validation(seed, 3.0, waves=False))}
    assert "periodic_loss" not in found or found["periodic_loss"].severity == "info"
