"""Convert runs logged elsewhere (CSV, TensorBoard event files) into trainspect run files.

Each format is one module with ``convert(src, dst, progress=None) -> ImportSummary``;
``FORMATS`` maps a format name to its module (adding a format = one file + one line).
"""
from __future__ import annotations

import importlib
from pathlib import Path

FORMATS = {
    "csv": "csv_import",
    "tensorboard": "tb_import",
}


def detect_format(src) -> str:
    """The format of ``src`` from its name; ValueError naming what is accepted otherwise."""
    from .tfevents import is_tensorboard_source

    p = Path(src)
    if is_tensorboard_source(p):
        return "tensorboard"
    if p.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {src}: trainspect imports {', '.join(sorted(FORMATS))} files")


def convert(src, dst, fmt: str | None = None, progress=None, **options):
    """``options`` go to the format's converter (TensorBoard: ``recursive``)."""
    fmt = fmt or detect_format(src)
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    module = importlib.import_module(f"{__name__}.{FORMATS[fmt]}")
    return module.convert(src, dst, progress=progress, **options)
