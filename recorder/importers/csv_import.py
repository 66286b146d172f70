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

STEP_COLUMNS = ("step", "global_step", "iteration", "iter", "epoch")
LONG_COLUMNS = ({"metric", "tag", "name"}, {"value"})


@dataclass
class ImportSummary:
    source: str
    layout: str
    points: dict = field(default_factory=dict)     # metric -> number of values written
    skipped_rows: int = 0

    def describe(self) -> str:
        total = sum(self.points.values())
        kind = f"{self.layout} CSV" if self.layout in ("long", "wide") else self.layout
        text = f"{total:,} values of {len(self.points)} metrics from {self.source} ({kind})"
        return text + (f"; {self.skipped_rows} unreadable rows skipped" if self.skipped_rows else "")


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
    if v is None or not math.isfinite(v) or v < 0 or v != int(v):
        return None
    return int(v)


def read_csv(src) -> tuple[str, dict, int]:
    """``(layout, {metric: (steps, values)}, skipped_rows)`` of a long or wide CSV file."""
    path = Path(src)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        rows = csv.reader(fh, dialect)
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
        skipped = 0
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
                    continue
                steps, values = series.setdefault(name, ([], []))
                steps.append(s)
                values.append(v)
        else:
            layout = "wide"
            metrics = [(i, c) for i, c in enumerate(cols) if i != step_col and c]
            if not metrics:
                raise ValueError(f"{path}: only a step column, no metric columns")
            for row in rows:
                if not row:
                    continue
                s = _step(row[step_col]) if step_col < len(row) else None
                if s is None:
                    skipped += 1
                    continue
                for i, name in metrics:
                    v = _number(row[i]) if i < len(row) else None
                    if v is not None:
                        steps, values = series.setdefault(name, ([], []))
                        steps.append(s)
                        values.append(v)
    return layout, {k: (np.asarray(s, np.int64), np.asarray(v, np.float64)) for k, (s, v) in series.items()}, skipped


def convert(src, dst, progress=None) -> ImportSummary:
    from ..recorder import Recorder

    layout, series, skipped = read_csv(src)
    if not series:
        raise ValueError(f"{src}: no numeric values found")
    summary = ImportSummary(source=str(src), layout=layout, skipped_rows=skipped)
    config = {"imported_from": str(Path(src).resolve()), "import_format": f"csv ({layout})"}
    with Recorder(dst, name=Path(src).stem, config=config) as rec:
        for i, (name, (steps, values)) in enumerate(series.items()):
            order = np.argsort(steps, kind="stable")
            rec.log_many({name: values[order]}, steps=steps[order])
            summary.points[name] = len(values)
            if progress is not None:
                progress(i + 1, len(series))
    return summary
