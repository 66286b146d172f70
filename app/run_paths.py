"""Command-line run arguments: a directory stands for the run files (``*.h5``) inside it, or
for the TensorBoard runs below it; TensorBoard logs become cached run files (tensorboard_runs)."""
from __future__ import annotations

import sys
from pathlib import Path

from .tensorboard_runs import as_run_file, run_dirs


def expand_runs(paths) -> list[str]:
    """Files stay as given; a directory becomes its ``.h5`` files (sorted, not recursive,
    the way ``ls DIR`` shows them), or if it has none, the TensorBoard runs below it (each
    folder holding event files). An empty directory yields nothing, so the caller can say so."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(str(f) for f in path.glob("*.h5") if f.is_file())
            out += files or [str(d) for d in run_dirs(path)]
        else:
            out.append(str(p))
    return out


def note(text: str) -> None:
    """Progress of a slow step (a TensorBoard conversion) on stderr, never mixed into stdout."""
    print(f"trainspect: {text}", file=sys.stderr, flush=True)


def run_file(path) -> str:
    """The run file to open for ``path``; TensorBoard logs are converted (cached) first.
    Raises ``RunFileError`` for logs that cannot be read."""
    return as_run_file(path, say=note)
