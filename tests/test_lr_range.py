"""LR range test (``trainspect.lr_range_test``): a real sweep on digits suggests an LR that trains,
the sweep is a normal run file the analysis side reads back, and the model is left as it was."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import torch.nn.functional as F  # noqa: E402

from trainspect import lr_range_test  # noqa: E402
from trainspect.analysis import open_run  # noqa: E402
from trainspect.analysis.lr_range import is_sweep, read_sweep  # noqa: E402
from trainspect.recorder.lr_range import suggest_lr  # noqa: E402
from tests.scenarios import digits, mlp  # noqa: E402

# LRs the scenario suite trains well with (healthy_mlp_adam, healthy_mlp_sgd_momentum).
KNOWN_GOOD = {"adam": 1e-3, "sgd": 0.05}


def make(kind, seed):
    torch.manual_seed(seed)
    model = mlp([64, 128, 64, 10])
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if kind == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    return model, opt


def batches(seed, n=200, size=64):
    Xtr, ytr, _, _ = digits()
    g = torch.Generator().manual_seed(seed)
    return [(Xtr[i], ytr[i]) for i in torch.randint(0, len(Xtr), (n, size), generator=g)]


def stepper(model, opt):
    def step(batch):
        x, y = batch
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("seed", [0, 1])
def test_suggestion_trains_digits_and_is_near_a_known_good_lr(kind, seed, tmp_path):
    torch.set_num_threads(1)
    model, opt = make(kind, seed)
    result = lr_range_test(model, opt, batches(seed), stepper(model, opt), tmp_path / "sweep.h5")
    assert result.lr is not None, result.reason
    assert KNOWN_GOOD[kind] / 10 <= result.lr <= KNOWN_GOOD[kind] * 10, str(result)
    assert result.lr <= result.min_loss_lr / 10 * (1 + 1e-9)
    assert "minimum" in result.reason or "steepest" in result.reason
    # The suggested LR trains: a fresh model reaches a loss far below chance (ln 10 = 2.30).
    model, opt = make(kind, seed + 10)
    for group in opt.param_groups:
        group["lr"] = result.lr
    step = stepper(model, opt)
    losses = [step(b).item() for b in batches(seed + 10, n=150)]
    assert np.median(losses[-20:]) < 0.5, losses[-20:]


def test_sweep_is_a_run_file_the_app_can_plot(tmp_path):
    torch.set_num_threads(1)
    model, opt = make("adam", 3)
    result = lr_range_test(model, opt, batches(3), stepper(model, opt), tmp_path / "sweep.h5", steps=60)
    with open_run(tmp_path / "sweep.h5") as run:
        assert is_sweep(run) and run.status().state == "finished"
        sweep = read_sweep(run)
    assert len(sweep.lr) == len(result.lrs) and np.allclose(sweep.lr, result.lrs)
    assert np.allclose(sweep.loss, result.losses) and np.allclose(sweep.smoothed, result.smoothed)
    assert np.all(np.diff(np.log(sweep.lr)) > 0)          # exponential: equal steps in log(LR)
    assert sweep.suggested == pytest.approx(result.lr)
    assert sweep.min_loss_lr == pytest.approx(result.min_loss_lr)


def test_stops_early_on_divergence_and_restores_model_and_optimizer(tmp_path):
    torch.set_num_threads(1)
    model, opt = make("sgd", 4)
    step = stepper(model, opt)
    for b in batches(4, n=5):       # some momentum state, so there is something to restore
        step(b)
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = {k: v["momentum_buffer"].clone() for k, v in opt.state_dict()["state"].items()}
    result = lr_range_test(model, opt, batches(4), step, tmp_path / "sweep.h5", steps=100, end_lr=1e4)
    assert len(result.lrs) < 100
    assert "stopped early" in result.stopped or "became" in result.stopped
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    state = opt.state_dict()["state"]
    assert all(torch.equal(momentum[k], state[k]["momentum_buffer"]) for k in momentum)
    assert opt.param_groups[0]["lr"] == 0.05 and not model.training


def test_second_param_group_keeps_its_ratio_and_batches_may_run_out(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(5)
    model = mlp([64, 32, 10])
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                           {"params": model[2].parameters(), "lr": 0.01}])
    seen = []

    def step(batch):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        return stepper(model, opt)(batch)
    one_shot = iter(batches(5, n=30))
    result = lr_range_test(model, opt, one_shot, step, tmp_path / "sweep.h5", steps=50)
    assert result.stopped == "the batches ran out after 30 steps" and len(result.lrs) == 30
    assert all(b == pytest.approx(a / 10) for a, b in seen)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    model, opt = make("adam", 0)
    with pytest.raises(ValueError, match="start_lr"):
        lr_range_test(model, opt, [], lambda b: 0.0, tmp_path / "a.h5", start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        lr_range_test(model, opt, [], lambda b: 0.0, tmp_path / "a.h5", steps=3)
    with pytest.raises(TypeError, match="must return the loss"):
        lr_range_test(model, opt, batches(0, n=20), lambda b: None, tmp_path / "b.h5", steps=20)
    for bad, word in (({"beta": 1.0}, "beta"), ({"diverge": 0.5}, "diverge"), ({"end_lr": float("inf")}, "end_lr")):
        with pytest.raises(ValueError, match=word):   # a ZeroDivisionError, a stop at step 5, a sweep to inf
            lr_range_test(model, opt, batches(0, n=20), lambda b: 0.0, tmp_path / "c.h5", **bad)


def test_a_warm_up_at_lr_0_still_sweeps(tmp_path):
    """A warm-up scheduler had the groups at LR 0: every step of the sweep ran at LR 0."""
    torch.set_num_threads(1)
    model, opt = make("sgd", 2)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step / 100)
    assert opt.param_groups[0]["lr"] == 0.0
    result = lr_range_test(model, opt, batches(2, n=40), stepper(model, opt), tmp_path / "w.h5", steps=30)
    assert result.lrs[0] == pytest.approx(1e-7) and result.lrs[-1] > 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_loss_below_zero_is_not_taken_for_divergence(tmp_path, seed):
    """A Gaussian NLL around -4 stopped at step 5: 'smoothed loss > 4 x its minimum' held for any negative minimum."""
    torch.manual_seed(seed)
    mu = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([mu], lr=0.01)

    def nll(batch):
        opt.zero_grad()
        loss = 0.5 * ((batch - mu) ** 2).mean() / 1e-4 + 0.5 * np.log(1e-4)   # about -4.6 at mu = 0
        loss.backward()
        opt.step()
        return loss
    data = [torch.randn(64) * 0.01 for _ in range(40)]
    result = lr_range_test(torch.nn.Linear(1, 1), opt, data, nll, tmp_path / "nll.h5", steps=40, end_lr=1e-4)
    assert len(result.lrs) == 40 and result.stopped.startswith("swept")


def test_suggest_lr_reads_a_textbook_curve():
    lrs = np.logspace(-6, 1, 100)
    x = np.log10(lrs)
    # flat, then a fall centred at 1e-3, a minimum near 1e-1, then a steep rise
    loss = 2.3 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) ** 2 * 4, 0)
    lr, steep, min_lr, reason = suggest_lr(lrs, loss)
    assert 5e-4 < steep < 2e-3
    assert 0.03 < min_lr < 0.3
    assert lr == pytest.approx(min(steep, min_lr / 10))
    assert "steepest" in reason and "minimum" in reason
    flat = suggest_lr(lrs, np.full(100, 2.3) + 1e-4 * np.sin(np.arange(100)))
    assert flat[0] is None
    assert "never fell" in flat[3] or "very start" in flat[3]


def test_diagnose_of_a_sweep_file_does_not_judge_the_planned_ramp(tmp_path, capsys):
    """The sweep's loss blows up at its end by design: diagnose said 'ERROR divergence, reduce
    the LR 10x' and exited 1 (a CI step on it failed)."""
    from trainspect.analysis.advisor import diagnose
    from trainspect.app.cli import main

    torch.set_num_threads(1)
    model, opt = make("adam", 3)
    result = lr_range_test(model, opt, batches(3, n=80), stepper(model, opt), tmp_path / "sweep.h5", steps=80)
    assert diagnose(result.path) == []
    assert main(["diagnose", result.path]) == 0
    out = capsys.readouterr().out
    assert "an LR range test" in out and f"suggested LR {result.lr:.3g}" in out and "ERROR" not in out
