"""Which rank of a distributed job this process is, and where its run file goes.

Every rank records: rank 0 writes the path the user gave, rank k writes ``<stem>.rank<k><suffix>``
next to it (see FORMAT.md, *Distributed runs*); when that path holds an earlier run, claim.py
moves every rank to the same ``<stem>-N`` name. Everything here is read from the environment
or from local process-group state (``get_rank``/``get_world_size`` are not collectives): the
recorder adds zero collectives to a job, so the id shared by the ranks is derived, not broadcast.
"""
from __future__ import annotations

import hashlib
import os
import sys

from .format import rank_path, split_rank_path  # noqa: F401 - the file layout is the format's


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    try:
        return int(text) if text else None
    except ValueError:
        return None


def rank_and_world() -> tuple[int, int] | None:
    """(rank, world size) of this process, or None when it is not part of a distributed job."""
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
    except Exception:  # noqa: BLE001 - a half-initialised process group: trust the environment
        pass
    if rank is None:
        return None
    if world is None or world <= rank:
        world = rank + 1
    return rank, world


def shared_run_id(path) -> str:
    """An id every rank of one launch computes alike without talking to the others.

    A hash of torchrun's ``TORCHELASTIC_RUN_ID``, the rendezvous address
    ``MASTER_ADDR:MASTER_PORT`` and the rank-0 file's absolute path.
    """
    env = os.environ.get
    launch = f"{env('TORCHELASTIC_RUN_ID', '')}|{env('MASTER_ADDR', '')}:{env('MASTER_PORT', '')}"
    base = os.path.abspath(os.fspath(split_rank_path(path)[0]))
    return hashlib.sha1(f"{launch}|{base}".encode()).hexdigest()[:16]


def dist_meta(path, rank: int, world: int) -> dict:
    """meta["distributed"] of one rank's file."""
    return {"rank": rank, "world_size": world, "run_id": shared_run_id(path),
            "local_rank": _env_int("LOCAL_RANK"),
            "rank0_file": split_rank_path(path)[0].name}
