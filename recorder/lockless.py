"""A writer that holds no trainspect lock (an older trainspect, before claim.py) still writing a run.

Such a writer takes no sidecar lock, so ``claim()`` alone would let ``resume=True`` clear its
superblock flags and write into the same file, or ``overwrite=True`` rename a new run over it
(it would go on writing into a deleted file). What it does leave: the superblock's "open for
writing" flags (set until it closes, and left set by a writer that was killed) and a heartbeat,
``state/values[0]``, refreshed at least every ``state/values[3]`` seconds while it lives. A file
whose flags are set and whose heartbeat advances (or which keeps changing, while its state
cannot be read yet) within two flush intervals of its last heartbeat has a live writer.

Runs once at ``Recorder()``, only on an existing file that is resumed or overwritten: a writer
killed a moment ago costs at most two of its flush intervals of waiting; one gone for longer
costs nothing.
"""
from __future__ import annotations

import math
import time

from . import format as fmt

POLL_S = 0.05
GRACE_S = 0.5             # beyond two flush intervals: a slow disk, a busy machine
MAX_FLUSH_EVERY = 60.0    # a damaged state must not make Recorder() wait for hours


def _state(path):
    """(heartbeat, flush_every) from state/values, or None while it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            state = f[fmt.STATE][()]
        heartbeat, flush_every = float(state[fmt.STATE_HEARTBEAT]), float(state[fmt.STATE_FLUSH_EVERY])
    except Exception:  # noqa: BLE001 - a writer not yet in SWMR mode, a torn read, an odd file
        return None
    if not (math.isfinite(heartbeat) and math.isfinite(flush_every) and flush_every > 0):
        return None
    return heartbeat, min(flush_every, MAX_FLUSH_EVERY)


def _stamp(path):
    try:
        head = fmt.read_head(path)
    except fmt.RunFileError:
        return None
    return head.mtime_ns, head.size


def live_lockless_writer(path) -> str | None:
    """Why ``path`` has a live writer that holds no lock, or None. Call it holding the lock."""
    try:
        head = fmt.read_head(path)
    except fmt.RunFileError:
        return None
    if not head.writer_open:
        return None
    state = _state(path)
    last, flush_every = state if state is not None else (head.mtime_ns / 1e9, 1.0)
    wait = 2 * flush_every + GRACE_S                # a live writer flushes within this
    deadline = min(last + wait, time.time() + wait)  # (a heartbeat in the future: a damaged state)
    stamp = _stamp(path)
    while time.time() < deadline:
        time.sleep(POLL_S)
        now = _state(path)
        if now is not None and now[0] > last:
            return f"its heartbeat in {fmt.STATE} advanced {time.time() - now[0]:.1f} s ago"
        if now is None and _stamp(path) != stamp:
            return "the file keeps changing"
    return None
