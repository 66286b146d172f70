"""Trial 18's attack on the recorder (A2, A4, A9, A10): the recorder's own sys/ series cannot be
written by log(); a run whose folder is deleted mid-run is saved back whole; a path that is a
named pipe or a device is refused at once (never read: a FIFO blocks its reader for ever), and
/dev/null records nothing, with one warning."""
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
from trainspect import Recorder
from trainspect.analysis import open_run
from trainspect.recorder.warning import RecorderWarning

torch = pytest.importorskip("torch")


def _messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


# ------------------------------------------------------------------ A2: reserved sys/ names
def _train_logging_sys_names(path, strict=False):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, strict=strict) as rec:
            rec.watch(model, opt)
            for i in range(5):
                loss = model(torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss, "sys/lr": 5.0, "sys/grad_norm": 1e6, "sys/custom": 1.0}, step=i)
    return caught


def test_log_refuses_the_recorders_own_sys_names_once_watch_made_them(tmp_path):
    caught = _train_logging_sys_names(tmp_path / "run.h5")
    run = open_run(tmp_path / "run.h5")
    assert run.scalar("sys/lr").values.tolist() == [0.01] * 5       # the optimizer's LR, nothing else
    grad_norm = run.scalar("sys/grad_norm").values
    assert len(grad_norm) == 5 and grad_norm.max() < 1e3
    assert "sys/custom" not in run.scalar_names()
    assert run.scalar("train/loss").values.size == 5
    refused = [m for m in _messages(caught) if "reserved for the recorder" in m]
    assert len(refused) == 3 and all(any(n in m for m in refused) for n in ("sys/lr", "sys/grad_norm", "sys/custom"))


def test_strict_raises_for_an_existing_sys_name(tmp_path):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "run.h5", strict=True) as rec:
        rec.watch(model, opt)
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        opt.step()
        with pytest.raises(ValueError, match="reserved"):
            rec.log({"sys/lr": 5.0}, step=0)
        with pytest.raises(ValueError, match="reserved"):
            rec.log({"sys/grad_norm": torch.tensor(1e6)}, step=0)


def test_a_resumed_run_keeps_refusing_sys_names(tmp_path):
    path = tmp_path / "run.h5"
    _train_logging_sys_names(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, resume=True) as rec:
            rec.log({"sys/lr": 7.0, "train/loss": 0.5}, step=5)
    assert any("reserved for the recorder" in m for m in _messages(caught))
    assert 7.0 not in open_run(path).scalar("sys/lr").values.tolist()


# ------------------------------------------------------------------ A4: run folder deleted mid-run
def test_a_run_whose_folder_is_deleted_mid_run_is_saved_back_whole(tmp_path):
    folder = tmp_path / "gone"
    path = folder / "run.h5"
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, flush_every=0.05) as rec:
            rec.watch(model, opt)
            for i in range(30):
                loss = model(torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss}, step=i)
                if i == 10:
                    shutil.rmtree(folder)
                if i >= 10:
                    time.sleep(0.05)   # the writer's link and disk checks run while the folder is gone
    messages = _messages(caught)
    assert not any("lost" in m or "stopped" in m for m in messages), messages
    assert any("deleted" in m and "folder" in m for m in messages), messages
    assert rec.path == path and path.is_file()
    run = open_run(path)
    assert run.scalar("train/loss").values.size == 30
    assert run.status().state == "finished" and run.status().last_step == 29


# ------------------------------------------------------------------ A9, A10: FIFOs and devices
_FIFO_SCRIPT = textwrap.dedent("""
    import os, sys, warnings
    from trainspect import Recorder
    fifo = sys.argv[1]
    for kw in ({}, {"resume": True}, {"overwrite": True}):
        try:
            Recorder(fifo, **kw)
            print("ACCEPTED", kw)
        except OSError as exc:
            print("REFUSED", kw, exc)
    print("LISTING", sorted(os.listdir(os.path.dirname(fifo))))
""")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_fifo_path_is_refused_at_once_in_every_mode(tmp_path):
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    # in a child with a timeout: reading the pipe blocked Recorder(resume=True) for ever
    out = subprocess.run([sys.executable, "-c", _FIFO_SCRIPT, str(fifo)], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.splitlines()
    refused = [line for line in lines if line.startswith("REFUSED")]
    assert len(refused) == 3, out.stdout + out.stderr
    assert all("not a regular file (a named pipe (FIFO))" in line for line in refused)
    assert "resume=True continues trainspect runs only" in refused[1], refused
    assert "already holds a run" not in out.stdout + out.stderr
    assert lines[-1] == "LISTING ['fifo.h5']"        # no fifo-2.h5, no lock file left behind


def test_a_character_device_is_refused_not_given_an_h5_suffix(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    before = os.path.exists("/dev/zero.h5")
    with pytest.raises(OSError, match="not a regular file .a character device"):
        Recorder("/dev/zero")
    assert os.path.exists("/dev/zero.h5") == before


def test_devnull_records_nothing_with_one_warning(tmp_path):
    if not os.path.exists(os.devnull) or os.name == "nt":
        pytest.skip("no /dev/null")
    before = os.path.exists(os.devnull + ".h5")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(os.devnull) as rec:
            rec.watch(model, opt)
            loss = model(torch.randn(4, 2)).sum()
            loss.backward()
            opt.step()
            rec.log({"loss": loss}, step=0)
        link = tmp_path / "null.h5"
        link.symlink_to(os.devnull)
        Recorder(link, overwrite=True).close()
    assert rec.enabled is False
    messages = _messages(caught)
    assert len(messages) == 2 and all("nothing is recorded" in m for m in messages), messages
    assert os.path.exists(os.devnull + ".h5") == before


# ------------------------------------------------------------------ A11: many tiny parameters
def _gradients_spec(rec):
    from trainspect.recorder.records.gradients import Gradients
    return next(r for r in rec._instruments.records if isinstance(r, Gradients))


def test_the_gradient_record_of_plain_cpu_parameters_is_one_pass(tmp_path, monkeypatch):
    """A model of 10,000 tiny tensors paid ~20 us a parameter a step in the gradient record's
    several passes (stat_view, _flat, a Python loop over the norms): the plain float32 CPU case
    is now one loop over the parameters and gives the very record the general path gives."""
    from trainspect.recorder.records import gradients

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(40)], torch.nn.Linear(3, 1))
    model[5].weight.requires_grad_(False)                       # a parameter without a gradient
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    calls = []
    real = gradients.stat_view
    monkeypatch.setattr(gradients, "stat_view", lambda t: calls.append(1) or real(t))
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        spec = _gradients_spec(rec)
        for i in range(3):
            loss = model(torch.randn(8, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss}, step=i)
        assert calls == []                                      # no per-parameter general pass
        loss = model(torch.randn(8, 3)).pow(2).mean()
        loss.backward()
        model[0].weight.grad[0, 0] = float("nan")
        model[7].bias.grad[0] = float("inf")
        fast, fast_seen = spec._fast_cpu(), spec._captured
        spec._plain_cpu = False
        slow, slow_seen = spec._compute_at_backward(), spec._captured
        import numpy as np

        assert np.array_equal(fast, slow, equal_nan=True)
        assert fast[len(spec.w.params) + 10] == -1.0            # model[5].weight: no gradient
        assert fast_seen[1] == slow_seen[1] and spec._unchanged_since(fast_seen)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)   # edits in place: seen as changed
        assert not spec._unchanged_since(fast_seen)
        opt.zero_grad()
