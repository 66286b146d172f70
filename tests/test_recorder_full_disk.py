"""A Recorder started on a disk that is already full raises before training starts (the script
can say so) and leaves nothing behind: the lock sidecar stayed (its pid note failed to write
and raised past the cleanup), and so did the 0-byte temporary run file HDF5 had created."""
from __future__ import annotations

import errno
import os

import pytest
from trainspect.recorder import Recorder, claim, h5file


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_start_raises_and_leaves_no_file(tmp_path, monkeypatch):
    real_file = h5file.h5py.File

    def file_then_full(name, mode, **kwargs):
        real_file(name, mode, **kwargs).close()      # HDF5 creates the file, then its first write fails
        _no_space()

    monkeypatch.setattr(claim, "_note_holder", _no_space)
    monkeypatch.setattr(h5file.h5py, "File", file_then_full)
    with pytest.raises(OSError, match="No space left"):
        Recorder(tmp_path / "run.h5")
    assert os.listdir(tmp_path) == []
