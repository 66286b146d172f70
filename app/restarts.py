"""A run file restarted under its reader (Qt-free): resumed by a new writer session
(``Recorder(..., resume=True)``) or replaced by another run at the same path
(``overwrite=True``, delete and create). ``trainspect tail`` and the app follow it: a reader
opened before the restart shows the old file (a replaced one) or a stale view of it, so both
reopen the path.

What tells (all cheap: no HDF5 read except the session count):
- replaced: the path names another file (device, inode) than the one opened;
- resumed: the file's writer-session count grew (readable while the run is live or stale);
- a finished or crashed run is not read again (its reader may keep cached state): a writer
  that takes it up again creates the lock sidecar the recorder holds while it writes.
"""
from __future__ import annotations

import os

from trainspect.analysis import RunFileError
from trainspect.analysis.run import fmt


def file_identity(path):
    """(device, inode) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def writer_sidecar(path):
    """(inode, mtime) of the lock sidecar a writer of ``path`` creates, or None without one.
    A stat, not a lock probe: probing could make a starting writer think the file is taken."""
    try:
        st = os.stat(fmt.lock_path(path))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


class Restart:
    """What the followed file became: another run at the same path, or the same run resumed."""

    def __init__(self, message: str, replaced: bool, short: str = ""):
        self.message, self.replaced = message, replaced
        self.short = short or message      # for a run list row: "resumed (writer session 2)"

    def __repr__(self):
        return f"Restart({self.message!r})"


def replaced(path, identity) -> bool:
    now = file_identity(path)
    return identity is not None and now is not None and now != identity


def restart_of(run, identity, sessions: int, follow: str = "following"):
    """A Restart if ``run``'s path now holds another file (overwrite, delete + create) or its
    writer resumed it (a new session: the old view of the file is stale); else None."""
    if replaced(run.path, identity):
        return Restart(f"{run.path} was replaced by a new run: {follow} the new one", True)
    try:
        current = run.sessions
    except (RunFileError, OSError):
        return None
    if current > sessions:
        return Restart(f"{run.name} was resumed (writer session {current}): {follow} the new segment", False)
    return None


class Origin:
    """What a reader saw of its file when it opened it: the file's identity and how many
    writer sessions it had."""

    __slots__ = ("identity", "sessions")

    def __init__(self, identity, sessions: int):
        self.identity, self.sessions = identity, int(sessions)


def restart_between(name: str, path, before: Origin | None, after: Origin | None):
    """How the file changed between two opens of ``path`` (None: it did not restart)."""
    if before is None or after is None:
        return None
    if before.identity is not None and after.identity is not None and before.identity != after.identity:
        return Restart(f"{path} was replaced by a new run: showing the new one", True, "replaced by a new run")
    if after.sessions > before.sessions:
        return Restart(f"{name} was resumed (writer session {after.sessions}): showing the new segment", False,
                       f"resumed (writer session {after.sessions})")
    return None
