"""A writer that fails before its first write (the disk filled within the run's first seconds)
leaves a run file HDF5 cannot open; readers said "run is starting, try again" for ever.

The failed writer now leaves its reason in the run's lock sidecar, and readers say it: the
writer stopped before it began recording, and why. A writer that fails but still closes the
file cleanly (the disk had room for the close) leaves no sidecar: the file says "crashed".
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections import namedtuple

import pytest
from trainspect.analysis import open_run
from trainspect.analysis.vocab import RunState
from trainspect.app.cli import main
from trainspect.recorder import Recorder, writer_thread
from trainspect.recorder import format as fmt
from trainspect.recorder.format import RunFileError

REASON = "OSError: disk almost full: 0.0 MiB free in /data, the recorder keeps 64 MiB in reserve"


def _failed_before_start(path):
    """A process whose writer failed before the file left its first state, as on a full disk:
    the HDF5 file is never closed (HDF5 could not write its metadata), the lock is let go with
    the reason (Recorder.close -> recorder._release)."""
    code = textwrap.dedent(f"""
        import os
        from trainspect.recorder.claim import WriterLock
        from trainspect.recorder.h5file import RunFileWriter
        lock = WriterLock({str(path)!r}); assert lock.acquire()
        w = RunFileWriter({str(path)!r}); w.f.flush()
        lock.release({REASON!r})
        os._exit(0)      # the HDF5 file stays as the failed writer left it
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_readers_say_why_the_file_holds_nothing(tmp_path, capsys):
    path = tmp_path / "run.h5"
    _failed_before_start(path)
    assert fmt.read_head(path).writer_open
    with pytest.raises(RunFileError, match=r"writer stopped before it began recording \(it failed: OSError: "
                                           r"disk almost full.*\): the file holds no data"):
        open_run(path)
    assert main(["tail", "--wait", "60", str(path)]) == 2     # no wait: nothing will come
    assert "disk almost full" in capsys.readouterr().err
    assert main(["info", str(path)]) != 0
    assert "disk almost full" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1])
def test_a_failure_the_file_records_leaves_no_sidecar(tmp_path, monkeypatch, seed):
    # The space check says the disk is full; the close still has room: status crashed, error kept.
    space = namedtuple("space", "f_bavail f_frsize")
    monkeypatch.setattr(writer_thread.os, "statvfs", lambda _: space(0, 4096))
    path = tmp_path / "run.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = Recorder(path)
        for step in range(5 + seed):
            rec.log({"loss": 1.0}, step=step)
        rec.flush()
        rec.close()
    assert not fmt.lock_path(path).exists()
    with open_run(path) as run:
        status = run.status()
        assert status.state == RunState.RECORDING_STOPPED and "disk almost full" in status.error
