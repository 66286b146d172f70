"""``trainspect tail``: the terminal view of a live run (writer in another process)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from trainspect.app.cli import main

REPO = Path(__file__).resolve().parents[1]

# Writer process: train/loss falls for 60 steps, then climbs 5 % a step (a divergence the
# advisor names); sys/lr and sys/grad_norm every step. Then "close" or "idle" until killed.
# It takes the writer's lock before creating the file, as the Recorder does: without it, a
# reader that looked in the moment between the file's creation and its SWMR start read a
# file held by "a program other than trainspect's recorder" (1 run in 8 under a CPU hog).
WRITER = r"""
import sys, time
from trainspect.recorder.claim import WriterLock
from trainspect.recorder.h5file import RunFileWriter
path, steps, dt, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lock = WriterLock(path)
assert lock.acquire()
w = RunFileWriter(path)
w.start({"name": "tail-test"}, flush_every=dt)
w.add_tags(["train/loss", "sys/lr", "sys/grad_norm"])
for step in range(steps):
    loss = 2.0 / (1 + 0.1 * step) if step < 60 else (2.0 / 7.0) * 1.05 ** (step - 60)
    w.append_scalars([step] * 3, [0, 1, 2], [loss, 0.01, 1.5 + step / 100], [time.time()] * 3)
    w.flush(step)
    time.sleep(dt)
print("READY", flush=True)
if mode == "close":
    w.close()
    lock.release()
else:
    while True:
        w.flush()
        time.sleep(dt)
"""


def start_writer(path, steps, dt=0.01, mode="close") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(steps), str(dt), mode],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_once_prints_latest_values_state_and_findings(tmp_path, capsys):
    path = tmp_path / "done.h5"
    proc = start_writer(path, steps=140, dt=0.0)
    assert proc.wait(60) == 0
    proc.stdout.close()
    assert main(["tail", str(path), "--once"]) == 0
    out = capsys.readouterr().out
    snapshot = next(line for line in out.splitlines() if line.startswith("step"))
    assert snapshot.split("|")[0].strip() == "step    139"
    expected_loss = (2.0 / 7.0) * 1.05 ** 79
    assert f"train/loss {expected_loss:.4g}" in snapshot
    assert "lr 0.01" in snapshot and "grad norm 2.89" in snapshot and snapshot.endswith("finished")
    assert "[divergence]" in out and "likely cause" in out


def test_follows_a_live_run_until_it_finishes_printing_each_finding_once(tmp_path, capsys):
    path = tmp_path / "live.h5"
    proc = start_writer(path, steps=160, dt=0.01)
    try:
        rc = main(["tail", str(path), "--interval", "0.1", "--advisor-every", "0.3"])
    finally:
        proc.wait(60)
        proc.stdout.close()
    out = capsys.readouterr().out
    assert rc == 0
    steps = [int(line.split("|")[0].split()[1]) for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) >= 3 and steps == sorted(steps) and steps[-1] == 159   # grew while we watched
    assert out.count("[divergence]") == 1
    assert out.rstrip().splitlines()[-1].startswith("tail-test: finished at step 159")


def test_stops_when_the_writer_stops_responding(tmp_path, capsys, monkeypatch):
    import trainspect.analysis.run as run_module

    monkeypatch.setattr(run_module, "STALE_MIN_SECONDS", 0.3)
    path = tmp_path / "killed.h5"
    proc = start_writer(path, steps=25, dt=0.01, mode="idle")
    try:
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        rc = main(["tail", str(path), "--interval", "0.1", "--advisor-every", "0"])
    finally:
        proc.stdout.close()
    out = capsys.readouterr().out
    assert rc == 1
    assert "writer stopped responding at step 24" in out.splitlines()[-1]


def test_unreadable_file_is_named_with_exit_code_2(tmp_path, capsys):
    assert main(["tail", str(tmp_path / "nope.h5"), "--wait", "0"]) == 2
    assert "nope.h5: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(np.arange(1000, dtype=np.int64).tobytes())
    assert main(["tail", str(bad), "--wait", "0"]) == 2
    assert "bad.h5" in capsys.readouterr().err


def test_a_logged_lr_and_the_recorded_one_are_told_apart(tmp_path):
    """nanoGPT logs "lr" and watch() records sys/lr: the line read "lr 0.1 | lr 0.1"."""
    import torch

    from trainspect.analysis import open_run
    from trainspect.app.commands.tail import snapshot_line
    from trainspect.recorder import Recorder
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for _ in range(3):
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": 1.0, "lr": 0.1})
    with open_run(tmp_path / "r.h5") as run:
        line = snapshot_line(run, run.status(), run.scalar_summary())
    assert line.count("lr 0.1") == 1 and "lr (recorded) 0.1" in line, line


def test_a_finding_the_run_outgrew_is_taken_back(monkeypatch):
    """Live, a divergence at step 28 (right then) and no_progress at step 157 scrolled by; the
    run recovered and the end said "1 finding(s)" with nothing taken back."""
    import trainspect.analysis
    from trainspect.analysis.findings import Finding
    from trainspect.app.commands.tail import FindingTracker

    passes = iter([["divergence"], ["divergence", "loss_blowup"], ["loss_blowup"], ["loss_blowup", "divergence"]])
    monkeypatch.setattr(trainspect.analysis, "diagnose",
                        lambda run, reuse=None: [Finding(s, "warning", s, 0, 9) for s in next(passes)])
    tracker = FindingTracker()
    said = [[x if isinstance(x, str) else x.symptom for x in tracker.update(None)] for _ in range(4)]
    assert said == [["divergence"], ["loss_blowup"], ["no longer found: divergence"], ["divergence"]]
