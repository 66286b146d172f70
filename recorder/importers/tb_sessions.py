"""``SummaryWriter.add_hparams`` session folders: part of the run they sit in, not runs of their own.

``writer.add_hparams({"lr": 0.1}, {"hparam/accuracy": 0.93})`` with its default ``run_name``
writes the hyperparameters and the final metrics into a new sub-folder of the writer's log
directory named after ``time.time()`` (``runs/lr_0.1/1733540000.12345/``). TensorBoard lists
that folder as a run of its own; to a user it is the training run's settings and result. So
here a sub-folder whose name is such a timestamp and whose event files hold hyperparameters is
read with its parent: the hyperparameters become the parent run's config, the metrics its
series (``hparam/accuracy``), and it is not listed as a run.
"""
from __future__ import annotations

import re
from pathlib import Path

from .tfevents import EventFileError, read_event_file

# str(time.time()): seconds since 1970 (ten digits until 2286), a dot, the fraction
_TIMESTAMP = re.compile(r"\d{9,11}\.\d+")
# A session folder holds a handful of small records; a bigger file is a real run's log
_MAX_SESSION_BYTES = 1 << 20


def _event_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and "tfevents" in f.name)


def is_hparams_session(folder) -> bool:
    """Is ``folder`` an ``add_hparams`` session folder inside a run (see the module's doc)?"""
    folder = Path(folder)
    if not _TIMESTAMP.fullmatch(folder.name) or not folder.is_dir():
        return False
    try:
        files = _event_files(folder)
        if not files or not _event_files(folder.parent):
            return False   # no parent run to belong to: a run of its own
        if sum(f.stat().st_size for f in files) > _MAX_SESSION_BYTES:
            return False
        return any(read_event_file(f).hparams for f in files)
    except (OSError, EventFileError, ValueError):
        return False


def session_folders(run_dir) -> list[Path]:
    """The ``add_hparams`` session folders directly inside ``run_dir``."""
    run_dir = Path(run_dir)
    try:
        children = sorted(p for p in run_dir.iterdir() if p.is_dir() and _TIMESTAMP.fullmatch(p.name))
    except OSError:
        return []
    return [p for p in children if is_hparams_session(p)]


def session_files(run_dir) -> list[Path]:
    """The event files of ``run_dir``'s session folders, in name order."""
    return [f for folder in session_folders(run_dir) for f in _event_files(folder)]
