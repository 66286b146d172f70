"""The advisor reads metrics through bounded views (analysis/decimate.py, Run.scalar_views), so
`trainspect tail` (which re-runs it while a run grows) and `diagnose` take memory that does not
grow with the run (issue 11 part 5). A view holds every point up to its capacity (the scenario
runs: findings unchanged), and beyond it a plain sample of every j-th point and each bucket's
smallest and largest point: spikes and NaNs are not lost, NaN/Inf counts stay exact, and the
findings on long runs are those of the full series."""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.signals import Signals
from trainspect.analysis.decimate import Decimated
from trainspect.analysis.run import VIEW_POINTS
from trainspect.recorder import Recorder

SEEDS = (0, 1, 2)


def _feed(values, capacity, rng, steps=None):
    d = Decimated(capacity)
    steps = np.arange(len(values)) if steps is None else steps
    i = 0
    while i < len(values):   # blocks of any size, as reads of a growing file come
        j = i + int(rng.integers(1, 5000))
        d.add(steps[i:j], values[i:j])
        i = j
    return d


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [10, 999, 1000, 1001, 30_000, 400_000])
def test_a_view_keeps_extremes_firsts_and_exact_counts_in_bounded_memory(seed, n):
    rng = np.random.default_rng(seed)
    capacity = 1000
    values = rng.lognormal(size=n)
    spike, dip, *bad = rng.choice(n, size=min(n, 9), replace=False)
    bad = sorted(bad)
    values[spike], values[dip] = 1e6, 1e-9
    values[bad[::2]] = np.nan
    values[bad[1::2]] = np.inf
    steps = np.arange(n) * 5 + 3
    view = _feed(values, capacity, rng, steps).view()
    assert view.points == n and view.n_nan == len(bad[::2]) and view.n_inf == len(bad[1::2])
    assert len(view) <= capacity + 3 * 20
    if n <= capacity:
        assert view.steps.tolist() == steps.tolist()
        assert np.array_equal(view.values, values, equal_nan=True)
    # every kept point is a point of the series, in order
    assert np.all(np.diff(view.steps) > 0)
    assert np.array_equal(values[(view.steps - 3) // 5], view.values, equal_nan=True)
    assert view.steps[0] == steps[0] and view.steps[-1] == steps[-1]
    first_bad = int(np.flatnonzero(~np.isfinite(values))[0])
    assert view.steps[np.flatnonzero(~np.isfinite(view.values))[0]] == steps[first_bad]
    assert 1e6 in view.values and 1e-9 in view.values


@pytest.mark.parametrize("seed", SEEDS)
def test_the_median_of_a_view_is_the_series_median(seed):
    """What the loss rules' levels rest on: a plain sample, and min/max pairs that sit below and
    above the median alike. Skewed noise, 1 M points."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0, 1, 1_000_000)
    view = _feed(values, 30_000, rng).view()      # every 64th point, extremes of 256
    assert abs(np.median(view.values) / np.median(values) - 1) < 0.05
    for frac in (0.1, 0.2):   # head and tail levels: the median of the first / last points
        k, kv = int(len(values) * frac), int(len(view) * frac)
        assert abs(np.median(view.values[:kv]) / np.median(values[:k]) - 1) < 0.15
        assert abs(np.median(view.values[-kv:]) / np.median(values[-k:]) - 1) < 0.15


@pytest.mark.parametrize("seed", SEEDS)
def test_a_view_does_not_depend_on_how_the_points_came_in(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=200_000)
    values[rng.integers(0, len(values), 20)] = np.nan
    whole = Decimated(4096)
    whole.add(np.arange(len(values)), values)
    a, b = whole.view(), _feed(values, 4096, rng).view()
    assert np.array_equal(a.steps, b.steps) and np.array_equal(a.values, b.values, equal_nan=True)


def test_the_first_positive_count_is_kept():
    """sys/nonfinite_grads: the step it first turned non-zero is the first bad step."""
    counts = np.zeros(500_000)
    counts[123_457] = 1
    counts[300_000:300_010] = 50
    view = _feed(counts, 1024, np.random.default_rng(0)).view()
    assert view.steps[np.argmax(view.values > 0)] == 123_457 and view.values.max() == 50


# ---------------------------------------------------------------- findings on long runs
def _loss(kind: str, n: int, rng) -> np.ndarray:
    t = np.arange(n) / n
    loss = (0.1 + 2.2 * np.exp(-t * 12)) * rng.lognormal(0, 0.15, n)
    if kind == "divergence":
        loss[n // 2:] *= np.exp(np.linspace(0, 4, n - n // 2))
    elif kind == "spikes":
        for i in rng.choice(np.arange(n // 10, n), 6, replace=False):
            loss[i] = 40.0
    elif kind == "nan":
        loss[int(n * 0.7):] = np.nan
    elif kind == "no_progress":
        loss = 2.3 * rng.lognormal(0, 0.15, n)
    return loss


def _symptoms(loss, steps, lr):
    sig = Signals(train_loss=("train/loss", steps, loss), scalars={"sys/lr": lr})
    found = diagnose_signals(sig)
    return {f.symptom: f for f in found}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["healthy", "divergence", "spikes", "nan", "no_progress"])
def test_findings_on_a_long_run_are_those_of_the_full_series(kind, seed):
    rng = np.random.default_rng(seed)
    n = 2_000_000
    steps = np.arange(n)
    loss = _loss(kind, n, rng)
    lr = np.full(n, 1e-3)
    full = _symptoms(loss, steps, (steps, lr))
    views = [_feed(x, VIEW_POINTS, rng).view() for x in (loss, lr)]   # buckets of 32 points
    assert len(views[0]) <= VIEW_POINTS + 70
    bounded = _symptoms(views[0].values, views[0].steps, (views[1].steps, views[1].values))
    assert set(bounded) == set(full), (kind, sorted(full), sorted(bounded))
    expected = {"healthy": set(), "divergence": {"divergence"}, "spikes": {"loss_spikes"},
                "nan": {"nan_inf"}, "no_progress": {"no_progress"}}[kind]
    assert expected <= set(full)
    if kind == "nan":
        assert bounded["nan_inf"].first_step == full["nan_inf"].first_step == int(n * 0.7)


# ---------------------------------------------------------------- Run.scalar_views on run files
def test_views_of_a_run_file_are_its_series_and_follow_it_as_it_grows(tmp_path):
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(0)
    with Recorder(path, flush_every=0.05) as rec:
        for step in range(300):
            rec.log({"train/loss": float(rng.random()), "val/loss": float(step)}, step=step)
        rec.flush()
        with open_run(path) as live:
            first = live.scalar_views(["train/loss", "val/loss", "absent"], capacity=240)
            assert set(first) == {"train/loss", "val/loss"} and first["val/loss"].points == 300
            for step in range(300, 1000):
                rec.log({"train/loss": float(rng.random()), "val/loss": float(step)}, step=step)
            rec.flush()
            live.refresh()
            later = live.scalar_views(["train/loss", "val/loss"], capacity=240)   # reads the new rows only
    with open_run(path) as r:
        fresh = r.scalar_views(["train/loss", "val/loss"], capacity=240)
        exact = r.scalar_views(["train/loss"])["train/loss"]
        full = r.scalar("train/loss")
    for name in fresh:
        assert np.array_equal(later[name].steps, fresh[name].steps)
        assert np.array_equal(later[name].values, fresh[name].values)
        assert fresh[name].points == 1000 and len(fresh[name]) <= 240 + 70
    assert np.array_equal(exact.steps, full.steps) and np.array_equal(exact.values, full.values)


def test_views_of_a_resumed_run_leave_out_superseded_points(tmp_path):
    path = tmp_path / "resumed.h5"
    with pytest.raises(RuntimeError):
        with Recorder(path) as rec:
            for step in range(800):
                rec.log({"loss": 1.0}, step=step)
            raise RuntimeError("crash")
    with Recorder(path, resume=True) as rec:
        for step in range(500, 600):
            rec.log({"loss": 2.0}, step=step)
    with open_run(path) as r:
        view = r.scalar_views(["loss"])["loss"]
        assert view.steps.tolist() == list(range(600)) and view.points == 600
        assert view.values.tolist() == [1.0] * 500 + [2.0] * 100
        small = r.scalar_views(["loss"], capacity=100)["loss"]
        assert small.points == 600 and small.steps[-1] == 599 and small.values[-1] == 2.0
        assert {f.symptom for f in diagnose(r)} == {f.symptom for f in diagnose(path)}
