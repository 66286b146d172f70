"""Which file a new Recorder writes, and the lock that keeps every other writer out of it.

One writer per run file, held for the life of the run: an exclusive ``flock`` on a sidecar
``.<file name>.lock`` in the same folder. A sidecar and not the run file itself, because
h5py's default file locking (``h5py.File(path, "r", swmr=True)`` without ``locking=False``)
takes a shared ``flock`` on the run file and would fail against ours. The kernel drops the
lock when the process dies (``kill -9`` included); a clean close deletes the sidecar. Works on
local disks (flock on NFS is emulated and not trusted here; SWMR needs a local disk anyway).

Taken once at ``Recorder()``: nothing here runs per step.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the existence rules below still apply
    fcntl = None

from . import format as fmt
from . import ranks
from .lockless import live_lockless_writer
from .format import is_locked, lock_path, numbered   # the conventions readers share (format.py)

MAX_CANDIDATES = 10_000


class RunFileInUse(OSError):
    """Another live process is writing this run file."""


def _note_holder(fd: int) -> None:
    """Who holds the lock, for a person looking."""
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


class WriterLock:
    """An exclusive lock on the name ``path`` (not on one inode: survives the file being replaced)."""

    def __init__(self, path):
        self.path = Path(path)
        self.file = lock_path(self.path)
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        if fcntl is None:
            return True
        for _ in range(100):   # the holder may delete the sidecar between our open and flock
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:   # still the sidecar on disk (not one a closing writer just deleted)?
                same = os.path.samestat(os.fstat(fd), os.stat(self.file))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                try:
                    _note_holder(fd)
                except OSError:   # a full disk: the lock holds without the note (raising left the sidecar)
                    pass
                return True
            os.close(fd)
        return False

    def release(self, note: str | None = None) -> None:
        """Delete the sidecar while still holding it, then let go (the next writer re-creates it).
        ``note``: the writer failed and left the run file unreadable (a disk that filled before
        the first write): the sidecar stays, with the reason, for readers (format.writer_note)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if note:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n{' '.join(note.split())[:500]}\n".encode("utf-8", "replace"))
            else:
                os.unlink(self.file)
        except OSError:
            pass
        os.close(fd)


def _family(base: Path) -> list[Path]:
    """Every rank file of the run whose rank-0 file is ``base`` (``base`` included if present)."""
    pattern = re.compile(re.escape(base.stem) + r"\.rank[0-9]+" + re.escape(base.suffix) + "$")
    folder = base.parent if str(base.parent) else Path(".")
    try:
        names = [e.name for e in os.scandir(folder)]
    except OSError:
        names = []
    return [folder / n for n in names if n == base.name or pattern.match(n)]


def _taken(base: Path, rank: int, distributed: bool) -> bool:
    """Is the name ``base`` (a rank-0 path) already used by another run?

    Without ranks: when the file exists. With ranks, every rank must pick the same name without
    talking to the others, and a sibling rank may have created its file a moment ago: a name is
    taken when this rank's file exists, or when any file of the family exists that no live
    writer holds and that another launch wrote (meta["distributed"]["run_id"] differs).
    """
    mine = ranks.rank_path(base, rank)
    if mine.exists():
        return True
    if not distributed:
        return False
    launch = ranks.shared_run_id(base)
    return any(not is_locked(p) and _launch_of(p) != launch for p in _family(base))


def _launch_of(path: Path) -> str | None:
    """meta["distributed"]["run_id"] of a run file (a sibling rank of this launch that already
    finished has ours); None when unreadable."""
    import h5py

    try:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            meta = fmt.decode_meta(f[fmt.META][()])
        return str(meta[fmt.META_DISTRIBUTED]["run_id"])
    except Exception:  # noqa: BLE001 - any unreadable file counts as another run's
        return None


class NotARunFile(FileExistsError):
    """The run path names something that is no regular file (a named pipe, a device, a socket)."""


def special_kind(path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a directory ("a named
    pipe (FIFO)", "a character device", ...), else None. Only ``os.stat``: nothing is opened,
    so a FIFO cannot block the caller (reading one waits for a writer, for ever: trial 18 A9)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):   # absent, a dangling link, a NUL in the name: not ours to judge
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


_MODE_NOTE = {"resume": "resume=True continues trainspect runs only", "overwrite":
              "overwrite=True replaces trainspect runs only", "new": "a run is recorded to a regular file"}


def refuse_special(path, mode: str = "new") -> None:
    """Raise :class:`NotARunFile` when ``path`` exists and is no regular file or directory, in
    every mode: a new run numbered on beside a pipe ("fifo.h5 already holds a run"), a resumed
    one blocked for ever reading it, and ``/dev/zero`` became ``/dev/zero.h5`` (trial 18 A9, A10).
    ``os.devnull`` never gets here (``Recorder(os.devnull)`` records nothing)."""
    kind = special_kind(path)
    if kind is not None:
        raise NotARunFile(f"trainspect: {path} is not a regular file ({kind}); {_MODE_NOTE.get(mode, _MODE_NOTE['new'])}: "
                          "give a path such as 'runs/exp1.h5' (nothing was changed; Recorder(os.devnull) records "
                          "nothing)")


def is_devnull(path) -> bool:
    """``path`` names the null device (``/dev/null``, or a link to it)."""
    try:
        return os.path.samestat(os.stat(path), os.stat(os.devnull))
    except (OSError, ValueError, TypeError):
        return False


def followed(path) -> Path:
    """The path a run at ``path`` is written to: a link's target (runs/exp1.h5 -> a big data
    disk). The run file is created by renaming a new file onto its path, which would replace
    the link itself and leave its target alone."""
    base = Path(path)
    return Path(os.path.realpath(base)) if base.is_symlink() else base


def claim(path, rank: int = 0, distributed: bool = False, mode: str = "new") -> tuple[Path, WriterLock, bool]:
    """Choose this process's run file and lock it: returns (path, lock, exists).

    ``mode``: ``"new"`` never touches an existing run (the first free ``stem-N`` name is used,
    also when a live writer holds the path: two scripts launched at once on one path both run),
    ``"overwrite"`` replaces it, ``"resume"`` continues it (``exists`` says whether there is one).
    Raises :class:`RunFileInUse` when a live writer holds the file the mode asks for, and in
    ``"new"`` mode for a rank of a distributed run: the ranks of a launch pick one name without
    talking, and cannot tell a live sibling's file from another launch's.
    """
    base = followed(path)
    if Path(path).is_symlink() and not base.parent.is_dir():
        # a dangling link: creating the directories it names (/nonexistent/x) is not ours to do
        raise FileNotFoundError(f"{path} is a symbolic link to {base}, whose directory does not exist")
    if str(base.parent):
        base.parent.mkdir(parents=True, exist_ok=True)   # the lock file lives beside the run
    refuse_special(ranks.rank_path(base, rank), mode)   # before anything reads it (a FIFO blocks the reader)
    if (mode != "new" or distributed) and is_locked(ranks.rank_path(base, rank)):
        raise _in_use(ranks.rank_path(base, rank))
    for n in range(1, MAX_CANDIDATES + 1):
        candidate = numbered(base, n)
        if mode == "new" and _taken(candidate, rank, distributed):
            continue
        target = ranks.rank_path(candidate, rank)
        lock = WriterLock(target)
        if not lock.acquire():
            if mode == "new" and (n > 1 or not distributed):
                continue      # another writer holds the name (a script launched at the same time)
            raise _in_use(target)
        exists = target.exists()
        if mode == "new" and exists:   # created between the check and the lock: try the next name
            lock.release()
            continue
        why = live_lockless_writer(target) if exists else None
        if why is not None:   # resume or overwrite would write over a writer that takes no lock
            lock.release()
            raise _in_use_unlocked(target, why)
        foreign = not_a_run(target) if exists and mode == "overwrite" else None
        if foreign is not None:
            lock.release()
            raise FileExistsError(f"{target} is {foreign}: overwrite=True replaces trainspect runs only; give "
                                  "this run another path (nothing was changed)")
        return target, lock, exists
    raise RunFileInUse(f"trainspect: no free name like {numbered(base, 2)} next to {base}")


TINY_FILE = 1024    # bytes: smaller than any run's header, nothing of value to keep


def not_a_run(target: Path) -> str | None:
    """What ``target`` is when it is no trainspect run that overwrite may replace (a Keras
    ``model.h5``, a device node, a directory), or None. A run damaged or cut short (no complete
    header, an HDF5 file that does not open) counts as a run: a crashed writer leaves those."""
    import stat

    try:
        st = os.stat(target)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({special_kind(target) or 'a device, pipe or socket'})"
    if st.st_size == 0:
        return None
    try:
        with open(target, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head != fmt.HDF5_SIGNATURE[:len(head)]:
        return "not an HDF5 file, so not a trainspect run"
    try:
        import h5py
        with h5py.File(target, "r", locking=False) as f:
            magic = f.attrs.get(fmt.ATTR_MAGIC)
    except Exception:  # noqa: BLE001 - damaged, cut short or open for writing elsewhere
        # A crashed writer's run still carries its mark in the first bytes; another program's
        # file that HDF5 will not open now (being written, or an interrupted save) does not,
        # and was replaced (trial 14). A few hundred bytes hold nothing to lose.
        from .superblock import carries_run_mark

        if st.st_size < TINY_FILE or carries_run_mark(target):
            return None
        return ("an HDF5 file that does not open (being written by another program, or cut short) and carries no "
                "trainspect run mark")
    if magic is None or fmt.attr_str(magic) != fmt.FORMAT_MAGIC:
        return "an HDF5 file but not a trainspect run (a saved model or dataset?)"
    return None


def _in_use_unlocked(target: Path, why: str) -> RunFileInUse:
    return RunFileInUse(
        f"trainspect: {target} is being written by a process that holds no trainspect lock (an older "
        f"trainspect, or another program): the file is open for writing and {why}; two writers would "
        "corrupt the run. Give this run another path, or stop the other writer first")


def writer_of(target: Path) -> str | None:
    """Who holds ``target``'s writer lock now ("process N", "this process", "another process"),
    or None when no live writer does."""
    if not is_locked(target):
        return None
    return _holder(target)


def _holder(target: Path) -> str:
    try:
        holder = int(lock_path(target).read_text().split()[0])
        return "this process" if holder == os.getpid() else f"process {holder}"
    except (OSError, ValueError, IndexError):
        return "another process"


def _in_use(target: Path) -> RunFileInUse:
    who = _holder(target)
    return RunFileInUse(
        f"trainspect: {target} is being written by {who} (it holds {lock_path(target)}); two writers "
        "would corrupt the run. Give this run another path, or stop the other writer first")
