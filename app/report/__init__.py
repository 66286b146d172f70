"""Reports (self-contained HTML or PDF) and CSV export of runs.

``export_report(runs, path, progress=None)`` is what the CLI (`trainspect report`) and the app
(File > Export report...) call. The HTML path needs no Qt; the PDF path draws with Qt.
"""
from __future__ import annotations

from pathlib import Path

REPORT_FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}


def report_format(path) -> str:
    """'html' or 'pdf' from the file extension; ValueError for anything else."""
    ext = Path(path).suffix.lower()
    try:
        return REPORT_FORMATS[ext]
    except KeyError:
        raise ValueError(f"cannot tell the report format from {str(path)!r}: use a .html or .pdf file name") from None


def check_writable(path) -> None:
    """OSError now if ``path`` cannot be written (a folder, a missing folder, a read-only disk,
    permissions): not after minutes of reading runs and drawing plots."""
    import errno
    import os
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "it is a folder; give a file name such as report.html", str(path))
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "its folder does not exist", str(folder))
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, "the file exists and is read-only", str(path))
    fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")   # a read-only disk, root too
    os.close(fd)
    os.unlink(probe)


def export_report(runs, path, progress=None, title: str | None = None) -> Path:
    """Write a report of ``runs`` (open ``analysis.Run`` objects or run-file paths) to ``path``.

    ``progress(done, total, text)`` is called after each step (plots of a run, advisor, writing).
    Paths are opened and closed here; Run objects are left open for the caller.
    """
    from .content import open_runs

    report_format(path)
    check_writable(path)
    runs = list(runs)
    opened = open_runs([r for r in runs if isinstance(r, (str, Path))])
    it = iter(opened)
    runs = [next(it) if isinstance(r, (str, Path)) else r for r in runs]
    try:
        report, prog = gather_report(runs, progress, title)
    finally:
        for r in opened:
            r.close()
    return write_report(report, path, prog)


def gather_report(runs, progress=None, title: str | None = None):
    """(Report, its Progress): everything a report shows, read from the open ``runs`` (all the
    file reads of a report: the app runs this on a background reader)."""
    from .content import Progress, build_report, progress_total

    if not runs:
        raise ValueError("a report needs at least one run")
    prog = Progress(progress, progress_total(len(runs)))
    return build_report(runs, prog, title=title), prog


def write_report(report, path, progress=None) -> Path:
    """Write a gathered report to ``path`` (HTML, or PDF drawn with Qt: the app's GUI thread);
    reads no run file."""
    path = Path(path)
    if report_format(path) == "html":
        from .html import write_html
        write_html(report, path)
    else:
        from trainspect.app.gui.pdf import write_pdf
        write_pdf(report, path)
    if progress is not None:
        progress.step(f"wrote {path.name}")
    return path


def export_run_csv(run, directory, progress=None):
    """Every scalar and layer statistic of ``run`` as CSV files in ``directory``; see csv_export."""
    from .csv_export import export_run_csv as _export

    return _export(run, directory, progress=progress)


def export_plot_csv(path, columns) -> Path:
    """Write the data shown in one plot as CSV; see csv_export.write_columns."""
    from .csv_export import write_columns

    return write_columns(path, columns)
