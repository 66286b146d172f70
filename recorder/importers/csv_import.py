"""CSV -> run file. Two layouts, told apart by the header:

- long:  ``step,metric,value`` (one row per value; column order free, header names required)
- wide:  a ``step`` column (or ``epoch``/``global_step``/``iteration``) and one column per metric;
  empty cells are missing values (Lightning's CSVLogger writes train and val rows this way).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import format as fmt
from ..format import MAX_STEP

STEP_COLUMNS = ("step", "global_step", "iteration", "iter", "epoch")
LONG_COLUMNS = ({"metric", "tag", "name"}, {"value"})


KIND_WORDS = {"image": "image", "audio": "audio clip", "text": "text note"}


@dataclass
class ImportSummary:
    source: str
    layout: str
    points: dict = field(default_factory=dict)     # metric -> number of values written
    skipped_rows: int = 0
    bad_steps: int = 0          # rows (CSV) or values (TensorBoard) whose step is not in [0, 2**53)
    bad_cells: int = 0          # non-empty cells of a wide CSV that are no number ("abc", "TRUE")
    not_converted: dict = field(default_factory=dict)   # TensorBoard: kind -> {tag: summaries} (images, text)

    def describe(self) -> str:
        total = sum(self.points.values())
        kind = f"{self.layout} CSV" if self.layout in ("long", "wide") else self.layout
        text = f"{_count(total, 'value')} of {_count(len(self.points), 'metric')} from {self.source} ({kind})"
        if self.skipped_rows:
            text += f"; {_count(self.skipped_rows, 'unreadable row')} skipped"
        if self.bad_steps:
            unit = "row" if self.layout in ("long", "wide") else "value"
            text += f"; {_count(self.bad_steps, unit)} left out (step not a whole number in [0, 2**53))"
        if self.bad_cells:
            text += f"; {_count(self.bad_cells, 'cell')} that {'is' if self.bad_cells == 1 else 'are'} no number left out"
        if self.not_converted:
            text += "; not imported: " + ", ".join(
                f"{_count(sum(tags.values()), KIND_WORDS.get(kind, f'{kind} summary'))} ({', '.join(list(tags)[:3])}"
                + (", ..." if len(tags) > 3 else "") + ")" for kind, tags in sorted(self.not_converted.items()))
        return text


def _number(cell: str) -> float | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _step(cell: str) -> int | None:
    v = _number(cell)
    if v is None or not math.isfinite(v) or v < 0 or v >= MAX_STEP or v != int(v):
        return None   # 2**63 would overflow int64; from 2**53 steps are not exact in the file
    return int(v)


def _unusable_step(row, col) -> bool:
    """A number where the step goes, but no step the run file can hold (-1, 2.5, 2**63)."""
    return col < len(row) and _number(row[col]) is not None and _step(row[col]) is None


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def read_csv(src) -> tuple[str, dict, int, int, int]:
    """``(layout, {metric: (steps, values)}, skipped_rows, bad_steps, bad_cells)`` of a long or
    wide CSV file; ``bad_steps`` of the skipped rows have a number for a step, but not a usable
    one; ``bad_cells``: non-empty cells of a wide file that are no number (empty ones are gaps).
    A file that is not UTF-8 text or not CSV is a ValueError naming the file (and the line)."""
    path = Path(src)
    readers = []      # the csv reader, for the line a parse error is on
    try:
        return _read_csv(path, readers)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); save it as a UTF-8 CSV "
                         "(a spreadsheet's 'CSV UTF-8')") from None
    except csv.Error as exc:
        line = f" line {readers[0].line_num:,}:" if readers else ""
        raise ValueError(f"{path}:{line} not a CSV file trainspect can read ({exc}: a text cell of over "
                         f"{csv.field_size_limit():,} characters, or a quote that is never closed)") from None


def _distinct(metrics: list) -> list:
    """Columns of one name (a header ``step,loss,loss``) as ``loss``, ``loss-2``, ... (as
    ``export`` names its files): merged, three columns read as one series with three values a step."""
    seen: dict[str, int] = {}
    taken = {name for _, name in metrics}
    out = []
    for i, name in metrics:
        n = seen.get(name, 0) + 1
        seen[name] = n
        if n > 1:
            while f"{name}-{n}" in taken:
                n += 1
            seen[name] = n
            taken.add(f"{name}-{n}")
            name = f"{name}-{n}"
        out.append((i, name))
    return out


def _read_csv(path: Path, readers: list) -> tuple[str, dict, int, int, int]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        rows = csv.reader(fh, dialect)
        readers.append(rows)
        header = next(rows, None)
        if not header:
            raise ValueError(f"{path}: empty CSV file (a header row is needed)")
        cols = [h.strip() for h in header]
        lower = [c.lower() for c in cols]
        step_col = next((lower.index(c) for c in STEP_COLUMNS if c in lower), None)
        if step_col is None:
            raise ValueError(f"{path}: no step column; expected one of {', '.join(STEP_COLUMNS)} in the header "
                             f"(found {', '.join(cols)})")
        name_col = next((lower.index(c) for c in ("metric", "tag", "name") if c in lower), None)
        value_col = lower.index("value") if "value" in lower else None
        series: dict[str, tuple[list, list]] = {}
        skipped = bad_steps = bad_cells = 0
        if name_col is not None and value_col is not None:
            layout = "long"
            for row in rows:
                if not row:
                    continue
                try:
                    s, name, v = _step(row[step_col]), row[name_col].strip(), _number(row[value_col])
                except IndexError:
                    s = name = v = None
                if s is None or not name or v is None:
                    skipped += 1
                    bad_steps += _unusable_step(row, step_col)
                    continue
                steps, values = series.setdefault(name, ([], []))
                steps.append(s)
                values.append(v)
        else:
            layout = "wide"
            metrics = _distinct([(i, c) for i, c in enumerate(cols) if i != step_col and c])
            if not metrics:
                raise ValueError(f"{path}: only a step column, no metric columns")
            for row in rows:
                if not row:
                    continue
                s = _step(row[step_col]) if step_col < len(row) else None
                if s is None:
                    skipped += 1
                    bad_steps += _unusable_step(row, step_col)
                    continue
                for i, name in metrics:
                    v = _number(row[i]) if i < len(row) else None
                    if v is not None:
                        steps, values = series.setdefault(name, ([], []))
                        steps.append(s)
                        values.append(v)
                    elif i < len(row) and row[i].strip():
                        bad_cells += 1
    series = {k: (np.asarray(s, np.int64), np.asarray(v, np.float64)) for k, (s, v) in series.items()}
    return layout, series, skipped, bad_steps, bad_cells


MAX_HPARAMS_BYTES = 1 << 20


def lightning_hparams(src) -> dict | None:
    """The ``hparams.yaml`` Lightning's CSVLogger writes beside ``metrics.csv`` (its
    ``save_hyperparameters()`` / ``log_hyperparams``), read with PyYAML's safe loader where
    installed (Lightning brings it); None if absent, unreadable or not a mapping."""
    path = Path(src).parent / "hparams.yaml"
    try:
        if not path.is_file() or path.stat().st_size > MAX_HPARAMS_BYTES:
            return None
        import yaml

        loaded = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except Exception:  # noqa: BLE001 - no PyYAML, python-object tags, bad YAML: the values still import
        return None
    return loaded if isinstance(loaded, dict) and loaded else None


def convert(src, dst, progress=None) -> ImportSummary:
    from ..recorder import Recorder

    layout, series, skipped, bad_steps, bad_cells = read_csv(src)
    if not series:
        raise ValueError(f"{src}: no numeric values found")
    summary = ImportSummary(source=str(src), layout=layout, skipped_rows=skipped - bad_steps, bad_steps=bad_steps,
                            bad_cells=bad_cells)
    hparams = lightning_hparams(src)
    config = {**(hparams or {}), fmt.CONFIG_IMPORTED_FROM: str(Path(src).resolve()),
              fmt.CONFIG_IMPORT_FORMAT: f"csv ({layout})"}
    # Every CSVLogger run is a metrics.csv: its version folder names it
    name = Path(src).parent.name if hparams is not None and Path(src).parent.name else Path(src).stem
    with Recorder(dst, name=name, config=config) as rec:
        for i, (name, (steps, values)) in enumerate(series.items()):
            order = np.argsort(steps, kind="stable")
            rec.log_many({name: values[order]}, steps=steps[order])
            if name in rec._tags:   # a name the recorder refused (a NUL in it) was warned about, not written
                summary.points[name] = len(values)
            if progress is not None:
                progress(i + 1, len(series))
    return summary
