"""A writer failure (disk full, I/O error) stops the recording, not the training: the run reads
"recording stopped at step N ...; the training went on", never "crashed", and `diagnose` exits 1
(its last steps were not checked), not 3 ("run crashed"). Trial 17, F6: a disk-full stop of a run
that trained to its end read `crashed at step 1187` and exited 3.

The file keeps status "crashed" beside the new mark (state/values[7]), so readers that predate
the mark read the run as before; a file written before the mark existed is known by the
writer's own refusal text."""
from __future__ import annotations

import os
import warnings
from collections import namedtuple

import h5py
import numpy as np

from trainspect.analysis import open_run
from trainspect.analysis.vocab import RunState
from trainspect.app.cli import main
from trainspect.recorder import Recorder, writer_thread
from trainspect.recorder import format as fmt

FakeStatvfs = namedtuple("FakeStatvfs", "f_bavail f_frsize")


def _fill_the_disk(path, monkeypatch, steps=400):
    """Record ``steps`` steps while the disk (faked) fills up after about 100 of them; the
    training loop goes on to its end and closes the recorder normally."""
    monkeypatch.setattr(writer_thread, "SPACE_CHECK_S", 0.0)
    rec = Recorder(path, flush_every=3600)
    rec._writer.min_free_bytes = 1 << 20
    full = {"now": False}

    def statvfs(directory):
        return FakeStatvfs((0 if full["now"] else 1 << 30) // 4096, 4096)

    monkeypatch.setattr(writer_thread.os, "statvfs", statvfs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(steps):
            rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
            if step == 99:
                rec.flush()
                full["now"] = True
            if step == 120:
                rec.flush()    # the first write that meets the full disk
        rec.close()            # the script ends normally
    assert any("disk almost full" in str(w.message) for w in caught)
    return rec


def test_a_disk_full_stop_reads_as_recording_stopped_not_crashed(tmp_path, monkeypatch):
    path = tmp_path / "full.h5"
    _fill_the_disk(path, monkeypatch)
    with open_run(path) as run:
        st = run.status()
        assert st.state == RunState.RECORDING_STOPPED
        assert not RunState(st.state).dead and RunState(st.state).final
        text = st.describe()
        assert text.startswith(f"recording stopped at step {st.last_step}") and "crashed" not in text
        assert "disk almost full" in text and "training went on" in text
        assert 99 <= st.last_step < 399
    with h5py.File(path, "r") as f:   # what a reader predating the mark reads: unchanged
        assert fmt.attr_str(f[fmt.STATUS][0]) == fmt.STATUS_CRASHED
        assert f[fmt.STATE][fmt.STATE_WRITER_FAILED] == 1.0


def test_diagnose_and_info_do_not_call_it_a_crash(tmp_path, monkeypatch, capsys):
    path = tmp_path / "full.h5"
    _fill_the_disk(path, monkeypatch)
    code = main(["diagnose", str(path)])
    out = capsys.readouterr().out
    assert code == 1, out          # not 3 ("crashed"), not 0 (the steps after the stop were never checked)
    headline = out.splitlines()[0]
    assert "recording stopped at step" in headline and "crashed" not in out
    assert "in the steps recorded (up to" in out
    assert main(["diagnose", str(path), "--json"]) == 1
    assert '"status": "recording stopped"' in capsys.readouterr().out
    assert main(["info", str(path)]) == 0
    status_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("status:"))
    assert "recording stopped at step" in status_line and "crashed" not in status_line


def test_a_file_written_before_the_mark_is_known_by_the_refusal_text(tmp_path, monkeypatch):
    path = tmp_path / "old.h5"
    _fill_the_disk(path, monkeypatch)
    with h5py.File(path, "r+") as f:    # as an older recorder left it: no mark
        values = f[fmt.STATE][()]
        values[fmt.STATE_WRITER_FAILED] = np.nan
        f[fmt.STATE][...] = values
    with open_run(path) as run:
        assert run.status().state == RunState.RECORDING_STOPPED


def test_an_exception_in_the_training_still_reads_as_crashed(tmp_path):
    path = tmp_path / "crash.h5"
    try:
        with Recorder(path) as rec:
            for step in range(5):
                rec.log({"train/loss": 1.0}, step=step)
            raise OSError("[Errno 28] No space left on device: 'ckpt.pt'")   # the user's own write
    except OSError:
        pass
    with open_run(path) as run:
        st = run.status()
        assert st.state == RunState.CRASHED and st.describe().startswith("crashed at step 4")


def test_an_io_error_of_the_writer_also_reads_as_recording_stopped(tmp_path, monkeypatch):
    path = tmp_path / "io.h5"
    rec = Recorder(path, flush_every=3600)
    for step in range(50):
        rec.log({"train/loss": 1.0}, step=step)
    rec.flush()
    original = rec._writer.file.append_scalars
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        raise OSError("[Errno 5] Input/output error")

    monkeypatch.setattr(rec._writer.file, "append_scalars", failing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(50, 80):
            rec.log({"train/loss": 1.0}, step=step)
        rec.flush()
        rec.close()
    monkeypatch.setattr(rec._writer.file, "append_scalars", original)
    assert calls["n"] >= 1
    with open_run(path) as run:
        st = run.status()
        assert st.state == RunState.RECORDING_STOPPED and st.last_step == 49
        assert "Input/output error" in st.describe()


def test_a_resumed_run_says_how_the_session_before_stopped_and_ends_finished(tmp_path, monkeypatch):
    path = tmp_path / "full.h5"
    _fill_the_disk(path, monkeypatch)
    monkeypatch.undo()
    with Recorder(path, resume=True) as rec:
        rec.log({"train/loss": 0.5})
    with open_run(path) as run:
        assert run.status().state == RunState.FINISHED
        note = run.segments()[1]["note"]
        assert note.startswith("recording stopped at step") and "disk almost full" in note
    assert os.path.getsize(path) > 0
