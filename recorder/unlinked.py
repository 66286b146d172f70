"""A run file deleted (or moved) while it is being written.

HDF5 keeps writing to its open descriptor, so nothing fails: a deleted run would be lost, silently,
when the file closes. The writer checks the link at each heartbeat (two ``stat`` calls a second):
once the file has no name left (``st_nlink == 0``) it warns, goes on writing, and at close copies
the file's bytes out of the still-open descriptor back to its path (or, if something else took
the path meanwhile, to the next free ``<stem>-N<suffix>``; a deleted folder is made again, and
where even that fails the temp folder takes it). Linux cannot give a deleted inode a
name again (linkat refuses ``i_nlink == 0``), hence the copy; a ``kill -9`` before close loses it.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import format as fmt
from .claim import numbered

DELETED = "deleted"
MOVED = "moved"


def link_state(fd: int, path: Path) -> str | None:
    """None while ``path`` names the open file; DELETED when the file has no name at all;
    MOVED when it still has one, just not ``path`` (renamed, or the path replaced)."""
    st = os.fstat(fd)
    if st.st_nlink == 0:
        return DELETED
    try:
        here = os.stat(path)
    except OSError:
        return MOVED
    return None if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino) else MOVED


def free_path(path: Path) -> Path:
    n = 1
    while numbered(path, n).exists():
        n += 1
    return numbered(path, n)


def fallback_path(path: Path) -> Path:
    """Where a deleted run goes when its own folder cannot take it: the temp folder."""
    import tempfile

    return Path(tempfile.gettempdir()) / path.name


def save_copy(fd: int, path: Path) -> Path:
    """Copy the open file (flushed: a consistent HDF5 file) to ``path`` or the next free name;
    the copy reads as a closed file. Returns where it went. A folder deleted with the file
    (``rm -r runs/exp1``) is made again (trial 18 A4: the run was lost)."""
    from .superblock import clear_write_flags

    path.parent.mkdir(parents=True, exist_ok=True)
    target = free_path(path)
    building = target.with_name(fmt.sidecar_name(target.name, f".{os.getpid()}.recovered"))
    size = os.fstat(fd).st_size
    out = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(1 << 24, size - offset), offset)
            if not chunk:
                break
            os.write(out, chunk)
            offset += len(chunk)
        os.fsync(out)
    finally:
        os.close(out)
    try:
        clear_write_flags(building)   # this copy has no writer: readers open it as a closed file
        os.replace(building, target)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    return target
