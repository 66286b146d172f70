"""The desktop viewer: the only part of trainspect that imports Qt (PySide6, pyqtgraph).

Everything else in ``trainspect.app`` (the CLI, the HTML/CSV/SVG reports, level-of-detail and
layer-table helpers) runs on a machine without Qt; it reaches this package only lazily, inside
the commands that open a window or draw a PDF (pyproject.toml's import-linter contracts).
"""
