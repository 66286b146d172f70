"""Small things a user meets on the first day: each said nothing, or the wrong thing."""
from __future__ import annotations

import os
import warnings

import pytest
from trainspect.analysis import open_run
from trainspect.app.cli import main
from trainspect.app.commands.tail import wait_for_run
from trainspect.recorder import Recorder
from trainspect.recorder.format import RunFileError
from trainspect.recorder.recorder import RecorderWarning


def test_empty_path_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for empty in ("", type("P", (os.PathLike,), {"__fspath__": lambda self: ""})()):
        with pytest.raises(ValueError, match="empty run file path"):
            Recorder(empty)
    assert os.listdir(tmp_path) == []      # no ./.h5, no lock sidecar


def test_a_run_closed_before_its_first_step_says_so(tmp_path, capsys):
    path = tmp_path / "empty.h5"
    Recorder(path).close()
    with open_run(path) as run:
        assert run.status().describe() == "finished before any step was recorded"
    assert main(["diagnose", str(path)]) == 0
    out = capsys.readouterr().out
    assert "step -1" not in out and "nothing was recorded in this run" in out
    assert "no problems found" not in out


def test_log_many_after_close_warns_once(tmp_path):
    rec = Recorder(tmp_path / "run.h5")
    rec.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            rec.log_many({"loss": [1.0, 2.0]})
    said = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert said == ["trainspect: <log>: log_many() after close() is ignored"]


def test_tail_says_at_once_that_it_waits_for_a_missing_file(tmp_path):
    said = []
    with pytest.raises(RunFileError, match="no such file"):
        wait_for_run(tmp_path / "nope.h5", timeout=0.3, say=said.append)
    assert len(said) == 1 and said[0].startswith("waiting up to 0 s for ") and "no such file" in said[0]


def test_a_watched_run_without_a_step_does_not_say_watch_was_not_called(tmp_path, capsys):
    import torch
    from trainspect.analysis.advisor.coverage import coverage

    path = tmp_path / "watched.h5"
    model = torch.nn.Linear(3, 1)
    with Recorder(path) as rec:
        rec.watch(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "watch() was called; no optimizer step was recorded" in out and "not called" not in out
    hows = {g.how for g in coverage(path).gaps if g.instrument != "loss"}
    assert hows == {"watch() was called, but no optimizer step was recorded: train at least a step"}


def test_snapshots_turned_off_are_named_as_such(tmp_path):
    import torch
    from trainspect.analysis.advisor.coverage import coverage

    path = tmp_path / "nosnaps.h5"
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(path, snapshot_every=0) as rec:
        rec.watch(model, opt)
        for step in range(3):
            opt.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
            rec.log({"train/loss": 1.0})
    gaps = {g.instrument: g.how for g in coverage(path).gaps if g.instrument not in ("validation_loss", "loss")}
    assert gaps == {"weight_snapshots": "snapshot_every=0 turned them off: record with Recorder(snapshot_every=N)"}


@pytest.mark.parametrize("first, shown", [(0, "steps:      30\n"), (1, "steps:      30 (steps 1–30)\n")])
def test_steps_of_a_run_counting_from_one(tmp_path, capsys, first, shown):
    """The HF Trainer and Lightning count from 1: a 30-step run read 'steps: 31'."""
    from trainspect.app.report.content import run_summary

    path = tmp_path / "run.h5"
    with Recorder(path) as rec:
        for step in range(first, first + 30):
            rec.log({"train/loss": 1.0}, step=step)
    assert main(["info", str(path)]) == 0
    assert shown in capsys.readouterr().out
    with open_run(path) as run:
        assert run_summary(run)[1]["steps"] == 30


def test_diagnose_names_the_layers_frozen_on_purpose(tmp_path, capsys):
    """A layer with requires_grad=False is left out of every rule: 'no problems found' said
    nothing of it, as if it had been checked."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model[2].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    path = tmp_path / "frozen.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(30):
            opt.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    main(["diagnose", str(path)])
    assert "frozen at watch() (requires_grad=False), not judged: 2.bias, 2.weight" in capsys.readouterr().out


def test_a_model_whose_layers_sit_in_a_plain_list_is_said_at_watch(tmp_path, capsys):
    """pytorch/examples' forward-forward Net keeps its layers in a Python list: watch() took it
    without a word, and info later said no optimizer step was recorded after 30 steps."""
    import torch
    from trainspect.analysis.advisor.coverage import coverage

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)]

    net = Net()
    opts = [torch.optim.SGD(layer.parameters(), lr=0.1) for layer in net.layers]
    path = tmp_path / "plain_list.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            rec.watch(net)
            for _ in range(5):
                for layer, opt in zip(net.layers, opts):
                    opt.zero_grad()
                    loss = layer(torch.randn(8, 4)).pow(2).mean()
                    loss.backward()
                    opt.step()
                    rec.log({"train/loss": loss.item()})
    said = [str(w.message) for w in caught if "trainspect" in str(w.message)]
    assert any("has no parameters (layers kept in a plain Python list" in m for m in said), said
    assert main(["info", str(path)]) == 0
    assert "instruments: none (the watched model has no parameters)" in capsys.readouterr().out
    assert {g.how for g in coverage(path).gaps if g.instrument == "gradients"} == {
        "the watched model has no parameters (layers in a plain list?): watch the module that holds them"}


def test_a_model_owning_none_of_its_optimizers_parameters_is_named(tmp_path):
    """Watched with one layer's optimizer, the forward-forward Net (layers in a plain list) got
    'optimizer.step() without a forward of the watched Net through its hooks' (trial 14)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)]

    net = Net()
    opt = torch.optim.Adam(net.layers[0].parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "ff.h5") as rec:
            rec.watch(net, opt)
            for _ in range(3):
                loss = net.layers[0](torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    said = [str(w.message) for w in caught if "trainspect" in str(w.message)]
    assert any("owns none of the optimizer's parameters" in m for m in said), said
