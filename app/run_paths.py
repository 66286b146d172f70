"""Command-line run arguments: a directory stands for the run files (``*.h5``) inside it."""
from __future__ import annotations

from pathlib import Path


def expand_runs(paths) -> list[str]:
    """Files stay as given; a directory becomes its ``.h5`` files (sorted, not recursive,
    the way ``ls DIR`` shows them). An empty directory yields nothing, so the caller can say so."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.glob("*.h5") if f.is_file())
        else:
            out.append(str(p))
    return out
