"""TensorBoard log directory or event file -> run file.

Scalars keep their tags as metric names: the advisor already knows the usual loss tags
(``Loss/train``, ``train/loss``, ``train_loss``, ``val_loss``, ``eval/loss`` ...). A histogram
tag becomes four series ``<tag>/hist_mean``, ``/hist_std``, ``/hist_min``, ``/hist_max``
computed from its buckets (TensorBoard's bucket edges do not fit the run file's per-parameter
64-bin layout, which needs the model's parameter table).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import format as fmt
from ..format import MAX_STEP
from .csv_import import ImportSummary
from .tb_sessions import is_hparams_session, session_files
from .tfevents import event_files, read_event_file


def _histogram_series(hists) -> dict:
    steps = np.asarray([h.step for h in hists], np.int64)
    wall = np.asarray([h.wall_time for h in hists], np.float64)
    mean = np.asarray([h.sum / h.num if h.num else np.nan for h in hists])
    var = np.asarray([h.sum_squares / h.num - (h.sum / h.num) ** 2 if h.num else np.nan for h in hists])
    return {"hist_mean": (steps, mean, wall), "hist_std": (steps, np.sqrt(np.maximum(var, 0.0)), wall),
            "hist_min": (steps, np.asarray([h.min for h in hists]), wall),
            "hist_max": (steps, np.asarray([h.max for h in hists]), wall)}


def _series_name(tag: str, folder: str) -> str:
    """The metric name of ``tag`` read from an event file in ``folder`` (relative to the log
    directory; "" for its own files). A sub-folder is a run of its own to TensorBoard: its tags
    are not merged with the others'. ``add_scalars("loss", {"train": ..., "val": ...})`` writes
    the folders ``loss_train`` and ``loss_val`` with the tag ``loss``: they become ``loss/train``
    and ``loss/val`` (merged by tag, the val values replaced the train ones without a word)."""
    if not folder:
        return tag
    last = folder.rsplit("/", 1)[-1]
    prefix = tag.replace("/", "_") + "_"
    if last.startswith(prefix) and len(last) > len(prefix):
        parent = folder[: -len(last)]
        return f"{parent}{tag}/{last[len(prefix):]}"
    return f"{folder}/{tag}"


def run_event_files(src, recursive: bool = True) -> list[Path]:
    """The event files of ``src`` (see ``tfevents.event_files``); with ``recursive=False`` also
    those of its ``add_hparams`` session folders, which are part of its run (tb_sessions)."""
    files = event_files(src, recursive)
    if not recursive and Path(src).is_dir():
        files += session_files(src)
    return files


def _folder_of(f: Path, root: Path, sessions: dict) -> str:
    """``f``'s folder relative to ``root``, an add_hparams session folder counted as its parent."""
    parent = f.parent
    if parent != root and sessions.setdefault(parent, is_hparams_session(parent)):
        parent = parent.parent
    return parent.relative_to(root).as_posix() if parent != root else ""


def read_tensorboard(src, progress=None, recursive: bool = True, hparams: dict | None = None,
                     skipped: dict | None = None) -> tuple[dict, int, int]:
    """``({metric: (steps, values, wall_times)}, records, bad_steps)`` of every event file under ``src`` (in
    ``src`` itself only, with ``recursive=False``: TensorBoard shows sub-folders as runs of their
    own). ``bad_steps`` values were left out: a step below 0 or from 2**53 on.

    Several files (a resumed run, one file per process) are merged per tag in step order;
    a repeated step keeps the value written last, as TensorBoard shows it. ``hparams``: a dict
    that receives the hyperparameters the logs hold (``add_hparams``, Lightning's
    ``log_hyperparams``; a later file's value wins). ``skipped``: a dict that receives the
    summaries not converted (images, plain text notes, other plugins'): kind -> {tag: count}.
    """
    files = run_event_files(src, recursive)
    # Tags are named after their folder below the one all the event files share (a log kept
    # in a single sub-folder, lightning_logs/version_0, keeps its plain tags).
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    pieces: dict[str, list] = {}
    records = 0
    sessions: dict = {}
    finals, ends = [], {}          # add_hparams' final metrics; each run folder's last scalar step
    sizes = [f.stat().st_size for f in files]
    total, done = max(sum(sizes), 1), 0
    for f, size in zip(files, sizes):
        # progress(done, total) in bytes of event files, also inside a big file (per record length)
        inner = None if progress is None else (lambda i, n, base=done, size=size: progress(base + size * i // n, total))
        data = read_event_file(f, progress=inner)
        if hparams is not None:
            hparams.update(data.hparams)
        for kind, tags in data.skipped.items() if skipped is not None else ():
            into = skipped.setdefault(kind, {})
            for tag, n in tags.items():
                into[tag] = into.get(tag, 0) + n
        done += size
        records += data.records
        folder = _folder_of(f, root, sessions)
        for tag, (steps, values, wall) in data.scalars.items():
            if sessions.get(f.parent) and not steps.any():
                # add_hparams' metric_dict, written at step 0 (its global_step default): the
                # run's final results, as TensorBoard's HParams table shows them; placed at the
                # run's last step below, not at its start
                finals.append((folder, _series_name(tag, folder), steps, values, wall))
                continue
            pieces.setdefault(_series_name(tag, folder), []).append((steps, values, wall))
            if len(steps):
                ends[folder] = max(ends.get(folder, 0), int(steps.max()))
        for tag, hists in data.histograms.items():
            for suffix, piece in _histogram_series(hists).items():
                pieces.setdefault(f"{_series_name(tag, folder)}/{suffix}", []).append(piece)
        if progress is not None:
            progress(done, total)
    for folder, name, steps, values, wall in finals:
        end = min(ends.get(folder, 0), MAX_STEP - 1)     # the last step of the run the session is part of
        pieces.setdefault(name, []).append((np.full_like(steps, end), values, wall))
    series, bad_steps = {}, 0
    for tag, parts in pieces.items():
        steps, values, wall = (np.concatenate([p[k] for p in parts]) for k in range(3))
        keep = (steps >= 0) & (steps < MAX_STEP)
        bad_steps += len(keep) - int(keep.sum())
        steps, values, wall = steps[keep], values[keep], wall[keep]
        # Last write wins for a repeated step: stable sort, then take each step's last entry.
        order = np.argsort(steps, kind="stable")
        steps, values, wall = steps[order], values[order], wall[order]
        last = np.r_[steps[1:] != steps[:-1], True] if len(steps) else np.zeros(0, bool)
        series[tag] = (steps[last], values[last], wall[last])
    return series, records, bad_steps


def convert(src, dst, progress=None, recursive: bool = True) -> ImportSummary:
    from ..recorder import Recorder

    hparams, skipped = {}, {}
    series, records, bad_steps = read_tensorboard(src, progress=progress, recursive=recursive, hparams=hparams,
                                                  skipped=skipped)
    if not any(len(s) for s, _, _ in series.values()):
        raise ValueError(f"{src}: no scalars or histograms in its event files")
    summary = ImportSummary(source=str(src), layout="TensorBoard", bad_steps=bad_steps, not_converted=skipped)
    # the logged hyperparameters are the run's config (the Compare tab's columns, as TensorBoard's
    # HParams table); where the source is kept is not one of them
    config = {**hparams, fmt.CONFIG_IMPORTED_FROM: str(Path(src).resolve()),
              fmt.CONFIG_IMPORT_FORMAT: fmt.IMPORT_FORMAT_TENSORBOARD}
    name = Path(src).name if Path(src).is_dir() else Path(src).parent.name
    walls = [w[np.isfinite(w)] for _, _, w in series.values()]
    began = min((float(w.min()) for w in walls if len(w)), default=None)     # the log's first event
    with Recorder(dst, name=name, config=config, _start_time=began) as rec:
        for tag, (steps, values, wall) in series.items():
            if len(steps):
                rec.log_many({tag: values}, steps=steps, wall_times=wall)   # the log's times, not the import's
                summary.points[tag] = len(steps)
    return summary
