"""Export actions for the desktop app: File > Export report..., File > Export plot > ... and
File > Export run to CSV...

``install_export_actions(window)`` needs only the window's public attributes: ``menuBar()``,
``runs`` (RunsModel: ``runs()``, ``current``, ``io`` its background readers), ``scalars`` (ScalarPlotPanel: ``plots`` metric ->
PlotItem, ``curves`` (metric, run key) -> Curve with ``entry`` and ``env``), ``heatmap``
(HeatmapPanel: ``plot``, ``shown``, ``buckets``, ``source``) and ``statusBar()``.
The dialog-free functions below are what tests drive.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from ..lod import ema
from ..report import export_plot_csv, gather_report, report_format, write_report
from ..report.csv_export import export_run_csv
from .plain_text import tip
from .run_io import locked_read

IMAGE_WIDTH = 1600          # px of an exported PNG (about 2x a plot on screen)


# ------------------------------------------------------------------ dialog-free functions
def export_plot_image(plot_item, path) -> Path:
    """Save a pyqtgraph PlotItem as PNG or SVG (by extension) with pyqtgraph's exporters."""
    import pyqtgraph.exporters as exporters

    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".png":
        exp = exporters.ImageExporter(plot_item)
        exp.parameters()["width"] = IMAGE_WIDTH
    elif ext == ".svg":
        try:
            exporters.SVGExporter(plot_item).export(str(path))
        except ValueError:
            # pyqtgraph 0.14's SVGExporter cannot parse the path syntax newer Qt writes
            # (pyqtgraph issue #3485): draw the item through QSvgGenerator ourselves.
            _render_svg(plot_item, path)
        if not path.exists():
            raise OSError(f"cannot write {path}")
        return path
    else:
        raise ValueError(f"cannot tell the image format from {str(path)!r}: use .png or .svg")
    exp.export(str(path))
    if not path.exists():
        raise OSError(f"cannot write {path}")
    return path


def _render_svg(item, path) -> None:
    """Paint a graphics item's scene area into an SVG file (vector paths and text)."""
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    source = item.mapRectToScene(item.boundingRect())
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(int(source.width()), int(source.height())))
    gen.setViewBox(QRectF(0, 0, source.width(), source.height()))
    gen.setTitle("trainspect plot")
    # Same DPI as the screen the scene was laid out for: otherwise point-sized fonts change
    # size in the file and labels drift away from their ticks.
    screen = QApplication.primaryScreen()
    gen.setResolution(int(round(screen.logicalDotsPerInch())) if screen is not None else 96)
    painter = QPainter()
    if not painter.begin(gen):
        raise OSError(f"cannot write {path}")
    try:
        painter.setRenderHint(QPainter.Antialiasing)
        item.scene().render(painter, QRectF(0, 0, source.width(), source.height()), source)
    finally:
        painter.end()


EXPORT_WAIT_S = 5.0   # an export on the GUI thread (scripts, tests) waits this long for a busy file


def scalar_plot_sources(scalars, metric: str) -> list:
    """What the CSV of ``metric``'s plot is read from: (run name, run, smoothing weight) per
    curve. GUI thread, no file access."""
    sources = [(curve.entry.name, curve.entry.run, curve.env.weight)
               for (m, _key), curve in scalars.curves.items() if m == metric]
    if not sources:
        raise KeyError(f"no plot data for metric {metric!r}")
    return sources


def read_scalar_plot_columns(sources, metric: str) -> dict:
    """The data one scalar plot shows, every run stacked: run, step, value, smoothed. Read from
    the files (the plots hold only a level of detail of long series): a background reader's job."""
    runs, steps, values, smoothed = [], [], [], []
    for name, guarded, weight in sources:
        with guarded.locked(EXPORT_WAIT_S) as run:
            if guarded.closed:
                raise OSError(f"{name} was closed before its data was read")
            series = run.scalar(metric)
        n = len(series)
        runs.extend([name] * n)
        steps.append(np.asarray(series.steps, np.int64))
        values.append(np.asarray(series.values, np.float64))
        smoothed.append(ema(series.values, weight)[0])
    return {"run": runs, "step": np.concatenate(steps), "value": np.concatenate(values),
            "smoothed": np.concatenate(smoothed)}


def scalar_plot_columns(scalars, metric: str) -> dict:
    """:func:`read_scalar_plot_columns` of ``metric``'s plot, here and now (scripts, tests)."""
    return read_scalar_plot_columns(scalar_plot_sources(scalars, metric), metric)


def heatmap_columns(heatmap) -> dict:
    """The layer heatmap as shown: first/last step of each column + one column per layer."""
    src = heatmap.source
    shown = np.asarray(heatmap.shown)
    if src is None or shown.size == 0:
        raise KeyError("the layer heatmap shows no data")
    first, last = heatmap.buckets
    if shown.shape == (len(src.layers), len(first)):
        shown = shown.T           # the image is drawn row-major: layers x columns
    cols = {"first_step": np.asarray(first, np.int64), "last_step": np.asarray(last, np.int64)}
    for j, layer in enumerate(src.layers):
        cols[layer if layer not in cols else f"{layer}#{j}"] = shown[:, j].astype(np.float64)
    return cols


# ------------------------------------------------------------------ dialogs
def _fail(window, what: str, exc: Exception) -> None:
    msg = f"{what}: {exc}"
    window.statusBar().showMessage(msg, 10000)
    QMessageBox.warning(window, "trainspect", tip(msg))   # it quotes paths and names: as typed, never HTML


def export_report_dialog(window) -> None:
    entries = window.runs.runs()
    if not entries:
        window.statusBar().showMessage("open a run first: there is nothing to report", 5000)
        return
    path, _ = QFileDialog.getSaveFileName(window, "Export report", "report.html",
                                          "HTML report (*.html);;PDF report (*.pdf)")
    if not path:
        return
    try:
        export_report_in_background(window, [e.run for e in entries], path)
    except Exception as exc:   # a report failure must never take the app down
        _fail(window, "cannot write the report", exc)


def export_report_in_background(window, runs, path) -> None:
    """Gather the report of ``runs`` (open GuardedRuns) on a background reader holding their
    files (a read hung inside one leaves the window responsive), then write it: an HTML file
    there too, a PDF here (it is drawn with Qt). The status bar says the export is under way,
    then where the file is (or why it failed)."""
    html = report_format(path) == "html"
    bar = window.statusBar()
    bar.showMessage(f"exporting the report to {path}…")

    def gather():
        report, _ = locked_read(runs[0], lambda: gather_report(runs), also=runs[1:])
        return write_report(report, path) if html else report

    def written(got) -> None:
        try:
            out = got if html else write_report(got, path)
        except Exception as exc:   # noqa: BLE001 - a report failure must never take the app down
            _fail(window, "cannot write the report", exc)
            return
        bar.showMessage(f"report written to {out}", 8000)

    window.runs.io.submit(gather, written, lambda exc: _fail(window, "cannot write the report", exc))


def export_plot_dialog(window, metric: str, kind: str) -> Path | None:
    """kind: 'png', 'svg' or 'csv' for the scalar plot of ``metric`` (None = the layer heatmap)."""
    stem = "layer_heatmap" if metric is None else "".join(c if c.isalnum() else "_" for c in metric)
    filters = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)", "csv": "CSV data (*.csv)"}
    path, _ = QFileDialog.getSaveFileName(window, "Export plot", f"{stem}.{kind}", filters[kind])
    if not path:
        return None
    try:
        if kind == "csv" and metric is not None:
            export_scalar_csv_in_background(window, metric, path)
            return None
        if kind == "csv":
            out = export_plot_csv(path, heatmap_columns(window.heatmap))
        else:
            plot = window.heatmap.plot if metric is None else window.scalars.plots[metric]
            out = export_plot_image(plot, path)
    except Exception as exc:
        _fail(window, "cannot export the plot", exc)
        return None
    window.statusBar().showMessage(f"plot exported to {out}", 8000)
    return out


def export_scalar_csv_in_background(window, metric: str, path) -> None:
    """Write the CSV of ``metric``'s plot on a background reader (the series are read from the
    files, which another read may hold): the window stays responsive, the status bar says the
    export is under way, then where the file is (or why it failed)."""
    sources = scalar_plot_sources(window.scalars, metric)
    bar = window.statusBar()
    bar.showMessage(f"exporting the {metric} plot to {path}…")
    window.runs.io.submit(lambda: export_plot_csv(path, read_scalar_plot_columns(sources, metric)),
                          lambda out: bar.showMessage(f"plot exported to {out}", 8000),
                          lambda exc: _fail(window, "cannot export the plot", exc))


def export_run_csv_dialog(window) -> None:
    entry = window.runs.current or (window.runs.runs()[0] if window.runs.runs() else None)
    if entry is None:
        window.statusBar().showMessage("open a run first: there is nothing to export", 5000)
        return
    directory = QFileDialog.getExistingDirectory(window, f"Export every scalar of {entry.name} to CSV files in")
    if directory:
        export_run_csv_in_background(window, entry, directory)


def export_run_csv_in_background(window, entry, directory) -> None:
    """Write every scalar and layer statistic of ``entry``'s run as CSV files in ``directory``,
    on a background reader holding its file (the window stays responsive); the status bar says
    the export is under way, then where the files are (or why it failed)."""
    run, bar = entry.run, window.statusBar()
    bar.showMessage(f"exporting {entry.name} to CSV files in {directory}…")
    window.runs.io.submit(lambda: locked_read(run, lambda: export_run_csv(run, directory)),
                          lambda _: bar.showMessage(f"CSV files written to {directory} (see index.csv)", 8000),
                          lambda exc: _fail(window, "cannot export CSV", exc))


# ------------------------------------------------------------------ menu
def _fill_plot_menu(window, menu) -> None:
    menu.clear()
    targets = [(m, m) for m in getattr(window.scalars, "plots", {})]
    if getattr(window.heatmap, "source", None) is not None:
        targets.append(("Layer heatmap", None))
    if not targets:
        act = menu.addAction("(no plot shown)")
        act.setEnabled(False)
        return
    for label, metric in targets:
        sub = menu.addMenu(label.replace("&", "&&"))
        for kind, text in (("png", "PNG image…"), ("svg", "SVG image…"), ("csv", "Shown data as CSV…")):
            sub.addAction(text).triggered.connect(lambda _=False, m=metric, k=kind: export_plot_dialog(window, m, k))


def install_export_actions(window) -> dict:
    """Add the export actions to the window's File menu (before Quit); returns them by name."""
    file_menu = next((a.menu() for a in window.menuBar().actions() if a.menu() and a.text().replace("&", "") == "File"),
                     None)
    if file_menu is None:
        file_menu = window.menuBar().addMenu("&File")
    quit_action = next((a for a in file_menu.actions() if a.text().replace("&", "").startswith("Quit")), None)

    report = QAction("Export &report…", window)
    report.setShortcut("Ctrl+E")
    report.triggered.connect(lambda: export_report_dialog(window))
    csv_all = QAction("Export run to &CSV…", window)
    csv_all.triggered.connect(lambda: export_run_csv_dialog(window))
    plot_menu = file_menu.__class__("Export &plot", file_menu)
    plot_menu.aboutToShow.connect(lambda: _fill_plot_menu(window, plot_menu))
    _fill_plot_menu(window, plot_menu)

    before = quit_action
    separator = file_menu.insertSeparator(before) if before is not None else file_menu.addSeparator()
    for act in (report, plot_menu.menuAction(), csv_all):
        if before is not None:
            file_menu.insertAction(separator, act)
        else:
            file_menu.addAction(act)
    window.addAction(report)    # the shortcut works with the menu bar hidden
    window._export_plot_menu = plot_menu   # keep a Python reference (Qt parent owns it too)
    return {"report": report, "plot_menu": plot_menu, "csv": csv_all}
