"""Recorder(..., resume=True): a crashed, terminated or finished run goes on in the same file
(issue 11 part 2; FORMAT.md, *Segments*), and `trainspect tail` follows a run restarted at its
path (resumed or replaced)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.recorder import RecorderWarning

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 60.0


def _env():
    return dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT.parent)))


def _killed_run(path, n_steps, metrics=("loss",)):
    """A run whose writer was killed (-9) after flushing steps 0..n_steps-1."""
    code = textwrap.dedent(f"""
        import time
        from trainspect.recorder import Recorder
        rec = Recorder({str(path)!r})
        for i in range({n_steps}):
            rec.log({{name: float(i) for name in {list(metrics)!r}}}, step=i)
        rec.flush()
        print("flushed", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().startswith("flushed")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE)


def _series(path, name="loss"):
    with open_run(path) as r:
        s = r.scalar(name)
        return s.steps.tolist(), s.values.tolist()


def test_resume_a_killed_run_from_its_checkpoint_step(tmp_path):
    path = tmp_path / "exp1.h5"
    _killed_run(path, 150, metrics=("loss", "acc"))
    with Recorder(path, resume=True) as rec:   # the script restarts from its checkpoint at step 100
        assert rec.path == path
        with open_run(path) as live:
            assert live.status().state == "live" and live.sessions == 2
        for step in range(100, 200):
            rec.log({"loss": -float(step)}, step=step)
    steps, values = _series(path)
    # Steps unbroken, each once: 0..99 of the first session, 100..199 of the resumed one.
    assert steps == list(range(200))
    assert values == [float(i) for i in range(100)] + [-float(i) for i in range(100, 200)]
    with open_run(path) as r:
        assert r.status().state == "finished"
        segments = r.segments()
        assert [s["first_step"] for s in segments] == [None, 100]
        assert segments[1]["note"] == "writer stopped at step 149 (killed or hung)"
        summary = r.scalar_summary()
        counts = dict(zip(summary.names, summary.counts))
        # Per series: loss 100..149 were written again (superseded), acc never was (all kept).
        assert counts == {"loss": 200, "acc": 150}
        assert r.scalar("acc").steps.tolist() == list(range(150))
        assert summary.max_step == 199
    out = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "info", str(path)], capture_output=True,
                         text=True, env=_env(), timeout=DEADLINE).stdout
    assert "steps:      200" in out
    assert "resumed:    session 2 (from step 100) after writer stopped at step 149 (killed or hung)" in out, out


@pytest.mark.parametrize("lazy", [False, True])
def test_superseding_is_per_series(tmp_path, monkeypatch, lazy):
    """Session 2 resumes from step 3; session 3 only evaluates at the last step (the HF flow:
    trainer.evaluate() after train()): it supersedes no training loss."""
    from trainspect.analysis import run as run_module

    if lazy:   # the reader's per-metric mode of long runs, on a short one
        monkeypatch.setattr(run_module, "EAGER_SCALAR_ROWS", 0)
    path = tmp_path / "three.h5"
    with Recorder(path) as rec:
        for step in range(6):
            rec.log({"train/loss": 1.0, "lr": 0.1}, step=step)
    with Recorder(path, resume=True) as rec:
        for step in range(3, 8):
            rec.log({"train/loss": 2.0}, step=step)
    with Recorder(path, resume=True) as rec:
        rec.log({"eval/loss": 3.0}, step=7)
    with open_run(path) as r:
        loss = r.scalar("train/loss")
        assert loss.steps.tolist() == list(range(8))
        assert loss.values.tolist() == [1.0] * 3 + [2.0] * 5
        assert r.scalar("lr").steps.tolist() == list(range(6))
        assert r.scalar("eval/loss").steps.tolist() == [7]
        summary = r.scalar_summary()
        assert dict(zip(summary.names, summary.counts.tolist())) == {"train/loss": 8, "lr": 6, "eval/loss": 1}
        assert dict(zip(summary.names, summary.last.tolist()))["train/loss"] == 2.0


def test_resume_a_finished_run_continues_its_step_count(tmp_path):
    path = tmp_path / "exp1.h5"
    with Recorder(path) as rec:
        for _ in range(10):
            rec.log({"loss": 1.0})
    with Recorder(path, resume=True) as rec:
        assert rec.step == 10
        for _ in range(5):
            rec.log({"loss": 2.0, "new_metric": 3.0})
    assert _series(path) == (list(range(15)), [1.0] * 10 + [2.0] * 5)
    assert _series(path, "new_metric")[0] == list(range(10, 15))
    with open_run(path) as r:
        assert r.scalar_names() == ["loss", "new_metric"]   # the old metric kept its id
        assert r.segments()[1]["note"] == "finished at step 9"


def test_resume_without_a_run_starts_one_quietly(tmp_path, recwarn):
    path = tmp_path / "fresh.h5"
    with Recorder(path, resume=True) as rec:
        rec.log({"loss": 1.0}, step=0)
    assert _series(path) == ([0], [1.0])
    assert not [w for w in recwarn if issubclass(w.category, RecorderWarning)]
    with pytest.raises(ValueError, match="pick one"):
        Recorder(path, resume=True, overwrite=True)


def test_resume_cuts_the_rows_of_an_unfinished_flush(tmp_path):
    path = tmp_path / "cut.h5"
    with Recorder(path) as rec:
        for i in range(20):
            rec.log({"loss": float(i)}, step=i)
    with h5py.File(path, "r+") as f:   # a dead writer got step and tag of 3 more rows out, not values
        for col in (fmt.SCALAR_STEP, fmt.SCALAR_TAG):
            f[col].resize((23,))
            f[col][20:] = 99
    with Recorder(path, resume=True) as rec:
        rec.log({"loss": 20.0}, step=20)
    assert _series(path) == (list(range(21)), [float(i) for i in range(21)])


def test_resume_refuses_a_file_that_is_not_a_run(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(OSError, match="not a trainspect run"):
        Recorder(path, resume=True)


def _model():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _train(rec, model, opt, steps):
    import torch

    for _ in range(steps):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.detach()})


def test_resume_with_the_same_model_continues_the_layer_records(tmp_path):
    import torch

    path = tmp_path / "model.h5"
    model, opt = _model()
    with Recorder(path, stats_every=5, hist_every=0, snapshot_every=0) as rec:
        rec.watch(model, opt)
        _train(rec, model, opt, 30)
    with Recorder(path, resume=True, stats_every=5, hist_every=0, snapshot_every=0) as rec:
        rec.watch(model, opt)
        rec.set_step(20)                      # the checkpoint was taken at step 20
        _train(rec, model, opt, 15)
    with open_run(path) as r:
        grads = r.layer_stat("grad_norm")
        assert grads.steps.tolist() == list(range(35))
        assert r.scalar("train/loss").steps.tolist() == list(range(35))
        assert r.scalar(fmt.SYS_LR).steps.tolist() == list(range(35))
    other = torch.nn.Linear(4, 1)
    with Recorder(path, resume=True) as rec:
        with pytest.warns(RecorderWarning, match="layers differ from those of the run being resumed"):
            rec.watch(other, torch.optim.SGD(other.parameters(), lr=0.1))
        rec.log({"train/loss": 0.5}, step=35)
    assert _series(path, "train/loss")[0] == list(range(36))


def test_resume_a_sigterm_terminated_run(tmp_path):
    path = tmp_path / "term.h5"
    code = textwrap.dedent(f"""
        import os, signal
        from trainspect.recorder import Recorder
        rec = Recorder({str(path)!r})
        for i in range(50):
            rec.log({{"loss": float(i)}}, step=i)
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), timeout=DEADLINE, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    with Recorder(path, resume=True) as rec:
        rec.log({"loss": 50.0}, step=50)
    assert _series(path)[0] == list(range(51))
    with open_run(path) as r:
        assert r.segments()[1]["note"] == "crashed at step 49: terminated (SIGTERM) at step 49"
        assert r.status().state == "finished" and r.status().error == ""


# ------------------------------------------------------------------ tail across a restart
WRITER = """
import sys, time
from trainspect.recorder import Recorder
path, start, stop, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rec = Recorder(path, resume=mode == "resume", overwrite=mode == "overwrite", flush_every=0.2)
for step in range(start, stop):
    rec.log({"loss": float(step)}, step=step)
    if step == start:
        rec.flush()
        print("started", flush=True)
    time.sleep(0.005)
if mode != "die":
    rec.close()
print("done", flush=True)
time.sleep(120 if mode == "die" else 0)
"""


def _writer(path, start, stop, mode):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start), str(stop), mode],
                            stdout=subprocess.PIPE, text=True, env=_env())


def test_tail_points_at_the_new_run_of_a_plain_restart(tmp_path):
    """Restarted without resume/overwrite, the new run takes run-2.h5: tail, following the old
    one until it reads as stale, says where the new one is."""
    path = tmp_path / "run.h5"
    first = _writer(path, 0, 50, "die")
    assert first.stdout.readline().startswith("started")
    assert first.stdout.readline().startswith("done")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=DEADLINE)
    from trainspect.recorder.superblock import clear_write_flags

    clear_write_flags(path)
    with h5py.File(path, "r+", locking=False) as f:   # its last heartbeat, long ago: stale at once
        f[fmt.STATE][fmt.STATE_HEARTBEAT] -= 3600
    with pytest.warns(RecorderWarning, match="run-2.h5"):
        rec = Recorder(path)
    with rec:
        rec.log({"loss": 1.0}, step=0)
        out = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "tail", str(path), "--advisor-every", "0"],
                             capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert out.returncode == 1 and "writer stopped responding" in out.stdout, out
    assert f"a new run is being written at {tmp_path / 'run-2.h5'}" in out.stdout, out.stdout


@pytest.mark.parametrize("mode", ["resume", "overwrite"])
def test_tail_follows_a_run_restarted_at_its_path(tmp_path, mode):
    """Restart-while-tailing trial: the writer dies (kill -9), a new one resumes or replaces the
    run at the same path; tail says so, follows it to the end, and never shows a traceback."""
    path = tmp_path / "run.h5"
    first = _writer(path, 0, 400, "die")
    assert first.stdout.readline().startswith("started")
    tail = subprocess.Popen([sys.executable, "-m", "trainspect.app.cli", "tail", str(path), "--interval", "0.05",
                             "--advisor-every", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    assert tail.stdout.readline().startswith("run (")     # following the live run
    assert first.stdout.readline().startswith("done")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=DEADLINE)
    second = _writer(path, 300, 600, mode)    # well within the 10 s before the run reads as stale
    out, err = tail.communicate(timeout=DEADLINE)
    second.wait(timeout=DEADLINE)
    assert "Traceback" not in err and "deserialize" not in err, err
    said = "was resumed (writer session 2)" if mode == "resume" else "was replaced by a new run"
    assert said in out, out
    assert tail.returncode == 0 and out.rstrip().endswith("finished at step 599"), (out, err)
    steps = _series(path)[0]
    assert steps == (list(range(600)) if mode == "resume" else list(range(300, 600)))


def test_summary_of_a_live_resumed_run_follows_superseding(tmp_path):
    """scalar_summary() is incremental (tail polls it); a metric the resumed session logs again
    later supersedes rows already counted, and the counts follow."""
    path = tmp_path / "live.h5"
    with Recorder(path) as rec:
        for step in range(10):
            rec.log({"loss": 1.0, "acc": 0.5}, step=step)

    def counts(r):
        summary = r.scalar_summary()
        return dict(zip(summary.names, summary.counts.tolist()))

    with Recorder(path, resume=True) as rec:
        rec.log({"acc": 0.7}, step=10)
        rec.flush()
        with open_run(path) as r:
            assert counts(r) == {"loss": 10, "acc": 11}
            rec.log({"loss": 2.0}, step=5)     # the checkpoint was at step 5 after all
            rec.flush()
            r.refresh()
            assert counts(r) == {"loss": 6, "acc": 11}
            rec.log({"loss": 2.0}, step=6)
            rec.flush()
            assert counts(r) == {"loss": 7, "acc": 11}
            assert r.scalar("loss").steps.tolist() == list(range(7))


def test_last_step_leaves_out_the_superseded_steps_of_a_crashed_session(tmp_path):
    """Crashed at step 800, resumed from the checkpoint at step 500: the dead session's steps
    500..800 are superseded, so the run's last step is the resumed session's, in every place
    that shows it (status, max_step, info, tail, report, the app's details panel)."""
    from trainspect.app.report.content import run_summary

    path = tmp_path / "crashed.h5"
    model, opt = _model()
    with pytest.raises(RuntimeError):
        with Recorder(path, stats_every=10, hist_every=0, snapshot_every=0) as rec:
            rec.watch(model, opt)
            _train(rec, model, opt, 801)       # steps 0..800, layer records every 10 steps
            raise RuntimeError("out of memory")
    with open_run(path) as r:
        assert r.status().describe().startswith("crashed at step 800")
    with Recorder(path, resume=True, stats_every=10, hist_every=0, snapshot_every=0) as rec:
        rec.watch(model, opt)
        rec.set_step(500)                      # the checkpoint was taken at step 500
        _train(rec, model, opt, 100)           # steps 500..599
        rec.flush()
        with open_run(path) as live:
            assert live.status().last_step == 599 and live.max_step == 599
            assert live.status().describe() == "live, step 599"
    with open_run(path) as r:
        assert r.status().describe() == "finished at step 599"
        assert r.max_step == 599 and r.scalar_summary().max_step == 599
        assert r.layer_stat("grad_norm").steps.max() <= 599
        rows, metrics = run_summary(r)
        assert ("steps", "600") in rows and metrics["steps"] == 600
    cli = [sys.executable, "-m", "trainspect.app.cli"]
    info = subprocess.run(cli + ["info", str(path)], capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert "steps:      600\n" in info.stdout and "finished at step 599" in info.stdout, info.stdout
    tail = subprocess.run(cli + ["tail", "--once", "--advisor-every", "0", str(path)], capture_output=True,
                          text=True, env=_env(), timeout=DEADLINE)
    assert tail.returncode == 0 and "step    599 |" in tail.stdout and "800" not in tail.stdout, tail.stdout


def test_last_step_of_a_resumed_run_counts_what_was_not_written_again(tmp_path):
    """Per series: before the resumed session logs anything, nothing is superseded yet; a
    series it never logs again (here every layer record group) keeps its steps."""
    path = tmp_path / "eval.h5"
    model, opt = _model()
    with Recorder(path, stats_every=10, hist_every=0, snapshot_every=0) as rec:
        rec.watch(model, opt)
        _train(rec, model, opt, 300)           # steps 0..299
    with Recorder(path, resume=True) as rec:
        rec.flush()
        with open_run(path) as live:
            assert live.status().last_step == 299 and live.max_step == 299
        rec.log({"eval/loss": 0.5}, step=100)  # a new series at an earlier step supersedes nothing
    with open_run(path) as r:
        assert r.status().describe() == "finished at step 299" and r.max_step == 299
