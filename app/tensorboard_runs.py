"""TensorBoard logs wherever a run file is expected (``open``, ``diagnose``, ``report``, ``info``).

An event file, or a directory holding event files, is converted once by the importer
(``trainspect import``) into a run file in a cache directory (``$TRAINSPECT_CACHE_DIR``, else
``$XDG_CACHE_HOME/trainspect/tensorboard``, else ``~/.cache/...``), never next to the logs:
a log directory may be read-only or shared, and TensorBoard's own view of it stays untouched.
The cache key is the source's absolute path plus each event file's size and mtime (and the
converter's version), so logs that grew (a live run) are converted again and an unchanged one
opens at once.

As in TensorBoard, each directory that holds event files is one run (its sub-folders are runs
of their own, e.g. those ``add_scalars`` makes): ``lightning_logs/`` gives ``version_0``, ...
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

from trainspect.recorder.format import RunFileError
from trainspect.recorder.importers.tb_import import run_event_files
from trainspect.recorder.importers.tb_sessions import is_hparams_session
from trainspect.recorder.importers.tfevents import EventFileError

from .terminal_text import warning_texts

CACHE_ENV = "TRAINSPECT_CACHE_DIR"
# Part of the cache key: a conversion made by an older importer is made again (2: the logged
# hyperparameters became the run's config; 3: add_hparams session folders joined their run;
# 4: JSON text summaries, the HF Trainer's TrainingArguments, became config too; 5: the events' own
# wall times and the log's first one as the run's start).
CONVERTER_VERSION = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trainspect" / "tensorboard"


def _is_event_file(path: Path) -> bool:
    return "tfevents" in path.name and path.is_file()


def is_tensorboard(path) -> bool:
    """An event file, or a directory with event files in it or below it."""
    p = Path(path)
    if p.is_file():
        return _is_event_file(p)
    return p.is_dir() and any(_is_event_file(f) for f in p.rglob("*tfevents*"))


def run_dirs(directory) -> list[Path]:
    """The TensorBoard runs under ``directory``: each folder that directly holds event files,
    except ``add_hparams`` session folders (read with the run they sit in: tb_sessions)."""
    folders = {f.parent for f in Path(directory).rglob("*tfevents*") if f.is_file()}
    return sorted(d for d in folders if not is_hparams_session(d))


def _cache_path(src: Path, files: list[Path]) -> tuple[Path, str]:
    source = src.resolve()
    name = _UNSAFE.sub("_", (source.name if source.is_dir() else source.parent.name) or "tensorboard")
    src_id = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    stats = f"converter {CONVERTER_VERSION}\n" + "\n".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    version = hashlib.sha1(stats.encode()).hexdigest()[:10]
    prefix = f"{name}-{src_id}-"
    return cache_dir() / f"{prefix}{version}.h5", prefix


def as_run_file(path, say=None) -> str:
    """``path`` itself, or for TensorBoard logs the cached run file converted from them.

    ``say(text)`` hears about a conversion (it can take seconds for millions of points).
    Logs that cannot be read raise ``RunFileError`` naming the source and the problem.
    """
    src = Path(path)
    if not is_tensorboard(src):
        return str(path)
    from trainspect.recorder.importers import convert

    if src.is_dir() and not any(_is_event_file(f) for f in src.iterdir()):
        dirs = run_dirs(src)      # no events of its own: the one run below it, if only one
        if len(dirs) > 1:
            names = ", ".join(str(d.relative_to(src)) for d in dirs[:5])
            raise RunFileError(f"{src} holds {len(dirs)} TensorBoard runs ({names}, ...): name one of them")
        src = dirs[0]
    try:
        files = run_event_files(src, recursive=False)   # sub-folders are runs of their own
        dst, prefix = _cache_path(src, files)
        if dst.is_file():
            return str(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if say is not None:
            say(f"reading TensorBoard logs {src} into {dst}")
        partial = dst.with_name(f".{dst.stem}.{os.getpid()}.partial.h5")
        try:
            with warnings.catch_warnings(record=True) as caught:    # an event it could not decode, ...
                warnings.simplefilter("always")
                convert(src, partial, fmt="tensorboard", recursive=False)
            os.replace(partial, dst)     # readers never see a half-written cache entry
        finally:
            if partial.exists():
                partial.unlink()
        for message in warning_texts(caught) if say is not None else ():
            say(f"warning: {message}")
    except (EventFileError, ValueError, OSError) as exc:
        raise RunFileError(f"{src}: cannot read these TensorBoard logs: {exc}") from exc
    for old in dst.parent.glob(f"{prefix}*.h5"):   # earlier versions of the same logs
        if old != dst:
            old.unlink(missing_ok=True)
    return str(dst)
