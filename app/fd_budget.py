"""How many more files this process may open: the app holds one descriptor per open run, and a
sweep larger than ``ulimit -n`` used them all up, leaving nothing for the screenshot, reports
or Qt's own files (tracebacks). The soft limit is raised to the hard one where that helps."""
from __future__ import annotations

import os

MARGIN = 64          # descriptors kept for everything else (Qt, fonts, exports, temp files)
PER_RUN = 2          # a run file, and its lock sidecar probed now and then


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def runs_that_fit(wanted: int) -> tuple[int, int | None]:
    """(how many of ``wanted`` runs can be opened, the soft limit), raising the soft limit to the
    hard one first when ``wanted`` would not fit. (wanted, None) where limits are unknown."""
    try:
        import resource
    except ImportError:      # Windows: no such limit to run into here
        return wanted, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    need = _open_descriptors() + MARGIN + PER_RUN * wanted
    if need > soft and (hard == resource.RLIM_INFINITY or hard > soft):
        target = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = (soft - _open_descriptors() - MARGIN) // PER_RUN
    return max(0, min(wanted, room)), soft
