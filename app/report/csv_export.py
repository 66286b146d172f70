"""CSV export that pandas reads directly (``pd.read_csv(path)``, no options needed).

``export_run_csv``: one file per scalar metric with points (step,value,wall_time), one wide file
per layer statistic (step + one column per layer) and ``index.csv`` mapping metric names to files.
``write_columns``: the data shown in one plot. NaN/Inf are written as ``nan``/``inf``/``-inf``,
which pandas parses as floats.

Text cells (metric and layer names, headers, index.csv) that a spreadsheet would run as a
formula -- starting with ``= + - @``, a tab or a carriage return -- get a leading ``'`` (OWASP's
CSV-injection advice), so a run named ``=HYPERLINK(...)`` opens as text. Numbers are never
touched: ``-1.5`` stays a number.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from ..terminal_text import visible

INDEX_NAME = "index.csv"
MAX_STEM = 100
ROWS_PER_WRITE = 100_000
EXPORT_BATCH_POINTS = 8_000_000   # scalar points held at once by an export of a long run (~200 MB)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text, never evaluates (see module doc), and
    a terminal prints as text: control characters written as escapes (a tag ``ESC ] 0 ; ... BEL``
    retitled the terminal of whoever ran ``cat index.csv``)."""
    text = visible(str(text))
    return "'" + text if text.startswith(FORMULA_START) else text


def value_cell(text) -> str:
    """A cell that may hold a number written as text (a setting's value, "-0.5"): numbers as
    they are, any other text as ``text_cell``."""
    text = str(text)
    try:
        float(text)
    except ValueError:
        return text_cell(text)
    return text


def safe_stem(name: str, taken: set) -> str:
    """A file-name stem for ``name`` that is safe on every OS and unique within ``taken``."""
    stem = _UNSAFE.sub("_", str(name)).strip("._-") or "metric"   # "-x.csv" reads as an option, or a formula
    stem = stem[:MAX_STEM]
    if stem.lower() in {"con", "prn", "aux", "nul"} or re.fullmatch(r"(?i)(com|lpt)\d", stem):
        stem = "_" + stem
    candidate, n = stem, 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{n}"
        n += 1
    taken.add(candidate.lower())
    return candidate


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))          # shortest exact text; nan, inf, -inf as pandas expects
    if isinstance(v, (np.integer,)):
        return str(int(v))
    if isinstance(v, (int, bool)):
        return str(v)
    return text_cell(v)


def write_columns(path, columns: dict) -> Path:
    """Write equal-length columns ``{header: values}`` to ``path`` as CSV."""
    names = list(columns)
    cols = [np.asarray(columns[n]) if not isinstance(columns[n], list) else columns[n] for n in names]
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {dict(zip(names, map(len, cols)))}")
    n = lengths.pop() if lengths else 0
    return write_blocks(path, names, ([c[lo:lo + ROWS_PER_WRITE] for c in cols] for lo in range(0, n, ROWS_PER_WRITE)))


def _create(path: Path):
    """A new file at ``path`` for CSV text. A symbolic link already there is replaced, never
    followed: exporting into a folder someone else can write must not overwrite the file a
    link planted there points at (``train_loss.csv -> ~/.bashrc``)."""
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return open(fd, "w", newline="", encoding="utf-8", errors="backslashreplace")


def write_blocks(path, header: list, blocks) -> Path:
    """Write ``header``, then each block (a list of equal-length columns) as rows: a table
    read in blocks is written in memory for one block's text, whatever its length."""
    path = Path(path)
    with _create(path) as fh:
        w = csv.writer(fh)   # its line ends (\r\n) for every row
        w.writerow([text_cell(n) for n in header])
        for cols in blocks:
            texts = [_column_text(c) for c in cols]
            if all(isinstance(c, np.ndarray) and c.dtype.kind in "fiub" for c in cols):
                # Numbers need no quoting: joining is ~4x faster than csv.writer (measured).
                if texts and texts[0]:
                    fh.write("\r\n".join(map(",".join, zip(*texts))))
                    fh.write("\r\n")
            else:
                w.writerows(zip(*texts))
    return path


def _column_text(values) -> list:
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return list(map(repr, values.tolist()))   # Python's shortest exact text: 2x numpy's astype(str)
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(str).tolist()   # shortest text that reads back exactly as this dtype
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return list(map(str, values.astype(np.int64).tolist()))
    return [_cell(v) for v in values]


def _layer_blocks(run, stat: str, n_layers: int, counted: list):
    """Columns (step, layer 0, layer 1, ...) of a layer statistic, a bounded block at a time;
    the rows written are added to ``counted[0]``."""
    rows = max(1, ROWS_PER_WRITE // (n_layers + 1))
    for block in run.layer_stat_chunks(stat, rows=rows):
        counted[0] += len(block.steps)
        yield [block.steps, *block.values.T]


INDEX_HEADER = ["kind", "name", "file", "rows"]


def _write_index(directory: Path, index_rows) -> None:
    with _create(directory / INDEX_NAME) as fh:
        w = csv.writer(fh)
        w.writerow(INDEX_HEADER)
        w.writerows([text_cell(kind), text_cell(name), text_cell(fname), rows] for kind, name, fname, rows in index_rows)


def export_run_csv(run, directory, progress=None) -> list:
    """Write every scalar and layer statistic of ``run`` into ``directory``; returns the paths.
    A metric with no points gets no file (a header alone, listed in index.csv, says nothing).

    ``progress(done, total, text)`` is called after each file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = run.scalar_names()
    stats = run.layer_stat_names()
    total = len(names) + len(stats) + 1
    taken = {INDEX_NAME[:-4]}
    index_rows, written = [], []
    done = 0

    def tick(text):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, text)

    _write_index(directory, [])   # first: an export cut short still says whose files these are
    rows = getattr(run, "scalar_rows_seen", 0)
    if rows > EXPORT_BATCH_POINTS and hasattr(run, "scalar_batches"):
        # a long table: metrics read a bounded group at a time, none kept (trial 18 A3: 6 GB)
        series = run.scalar_batches(names, EXPORT_BATCH_POINTS)
    else:
        series = ((name, run.scalar(name)) for name in names)
    for name, s in series:
        if not len(s):   # registered, never given a point (watch()'s input statistics of token ids)
            tick(f"skipped {name}: no points")
            continue
        fname = safe_stem(name, taken) + ".csv"
        write_columns(directory / fname, {"step": s.steps, "value": s.values, "wall_time": s.wall})
        index_rows.append(("scalar", name, fname, len(s)))
        written.append(directory / fname)
        tick(f"wrote {fname}")
    for stat in stats:
        layers = run.layer_stat(stat, 0, 0).layers
        fname = safe_stem(f"layers_{stat}", taken) + ".csv"
        header = ["step"]
        for j, layer in enumerate(layers):
            header.append(layer if layer not in header else f"{layer}#{j}")
        counted = [0]
        write_blocks(directory / fname, header, _layer_blocks(run, stat, len(layers), counted))
        index_rows.append(("layer_stat", stat, fname, counted[0]))
        written.append(directory / fname)
        tick(f"wrote {fname}")
    _write_index(directory, index_rows)
    written.append(directory / INDEX_NAME)
    tick(f"wrote {INDEX_NAME}")
    return written
