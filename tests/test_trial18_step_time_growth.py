"""A word LM that never detaches its hidden state (``loss.backward(retain_graph=True)``, the usual
answer to "backward through the graph a second time"): every backward runs through all the earlier
iterations, the step time grows with the step (8x over 45 steps), and the flat loss read "lr too
low, raise the learning rate 10x". ``sys/step_time`` was not recorded for a model watched without
an optimizer (a hand-written update, as pytorch/examples' word_language_model does) (trial 18 U7)."""
from __future__ import annotations

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _lm(path, seed, *, detach, steps=90, optimizer=False):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    torch.set_num_threads(1)     # a shared, busy host: no thread spin-waits in the step times
    V, H, T, B = 40, 48, 20, 8

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, 16)
            self.rnn = torch.nn.LSTM(16, H)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, hidden):
            y, hidden = self.rnn(self.emb(x), hidden)
            return self.out(y).view(-1, V), hidden

    model = LM()
    data = torch.randint(0, V, (T * steps + 1, B), generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=1.0) if optimizer else None
    with Recorder(path, config={"lr": 1.0}) as rec:
        rec.watch(model, opt)
        hidden = (torch.zeros(1, B, H), torch.zeros(1, B, H))
        for i in range(steps):
            x, y = data[i * T:(i + 1) * T], data[i * T + 1:(i + 1) * T + 1].reshape(-1)
            if detach:
                hidden = tuple(h.detach() for h in hidden)
            model.zero_grad()
            out, hidden = model(x, hidden)
            loss = torch.nn.functional.cross_entropy(out, y)
            loss.backward(retain_graph=not detach)
            if opt is not None:
                opt.step()
            else:
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-1.0)
            rec.log({"train/loss": loss.item()})


def test_step_time_is_recorded_without_an_optimizer(tmp_path):
    _lm(tmp_path / "lm.h5", 0, detach=True, steps=12)
    with open_run(tmp_path / "lm.h5") as run:
        s = run.scalar("sys/step_time")
        assert s is not None and s.steps.tolist() == list(range(1, 12)), None if s is None else s.steps
        assert np.all(np.asarray(s.values) > 0)


def _hand_written_run(path, step_times):
    """A hand-written update's run (watch(model), no optimizer) whose iterations took ``step_times``:
    the log times say so (as an older file's do), so the rule is tested on given times, not on this
    machine's clock and load."""
    torch = pytest.importorskip("torch")
    steps = np.arange(len(step_times) + 1)
    walls = 1.7e9 + np.concatenate([[0.0], np.cumsum(step_times)])
    with Recorder(path) as rec:
        rec.watch(torch.nn.Linear(4, 2))
        rec.log_many({"train/loss": 5.0 + 0.01 * np.cos(steps)}, steps=steps, wall_times=walls)
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_hidden_state_never_detached_is_named_by_its_step_time(tmp_path, seed):
    """The trial's word LM: 0.05 s a step growing ~linearly to ~0.6 s over 45 steps, on a noisy host
    (spikes of a few times the step); its detached twin keeps ~0.05 s. (Real training would make the
    test depend on this machine's load: the recording of sys/step_time is tested above.)"""
    rng = np.random.default_rng(seed)
    n = 45
    noise = (1 + 0.3 * rng.random(n)) * np.where(rng.random(n) < 0.08, 3.0, 1.0)
    found = _hand_written_run(tmp_path / "kept.h5", 0.05 * (1 + np.arange(n) / 4) * noise)
    assert "step_time_growth" in found, list(found)
    assert found["step_time_growth"].causes[0].id == "graph_retained"
    for f in found.values():
        assert not [x.text for x in f.fixes if "raise the learning rate" in x.text], (f.symptom, f.title)
    assert "step_time_growth" not in _hand_written_run(tmp_path / "ok.h5", 0.05 * noise)


def _finding_of(steps, times, tmp_path):
    from trainspect.analysis.advisor.signals import extract
    from trainspect.analysis.advisor.symptoms import step_time_growth
    # a stand-in with the step times alone: the rule reads nothing else
    sig = type("Sig", (), {})()
    sig.scalars = {"sys/step_time": (np.asarray(steps), np.asarray(times, np.float64))}
    assert extract       # the real signals carry sys/step_time (checked above through diagnose)
    return step_time_growth.detect(sig, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_jump_or_noise_in_the_step_time_is_no_growth(tmp_path, seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 101)
    noisy = 0.05 * (1 + 0.5 * rng.random(100))
    jump = np.where(steps < 50, 0.05, 0.2) * (1 + 0.1 * rng.random(100))    # another job started on the host
    ramp = 0.05 * (1 + steps / 10) * (1 + 0.3 * rng.random(100))
    assert _finding_of(steps, noisy, tmp_path) is None
    assert _finding_of(steps, jump, tmp_path) is None
    assert _finding_of(steps, ramp, tmp_path) is not None


def test_an_older_file_without_step_times_is_read_from_its_log_times(tmp_path):
    """A file of a hand-written loop written before sys/step_time was recorded without an
    optimizer: the training loss's log times, one row an iteration, are its step times."""
    torch = pytest.importorskip("torch")
    from trainspect.analysis.advisor.signals import extract
    model = torch.nn.Linear(4, 2)
    steps = np.arange(60)
    walls = 1.7e9 + np.cumsum(0.05 * (1 + steps / 6))          # 0.05 s a step, growing to 0.54 s
    with Recorder(tmp_path / "old.h5") as rec:
        rec.watch(model)
        rec.log_many({"train/loss": 5.0 + 0.01 * np.cos(steps)}, steps=steps, wall_times=walls)
    with open_run(tmp_path / "old.h5") as run:
        sig = extract(run)
        assert "sys/step_time" not in run.scalar_names() or not len(run.scalar("sys/step_time"))
    s, v = sig.scalars["sys/step_time"]
    assert len(v) == 59 and v[-1] > 5 * v[0]
    found = {f.symptom: f for f in diagnose(tmp_path / "old.h5")}
    assert "step_time_growth" in found, list(found)
    for f in found.values():
        assert not [x.text for x in f.fixes if "raise the learning rate" in x.text], (f.symptom, f.title)
