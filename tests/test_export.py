"""CSV export (`trainspect export RUN --csv DIR`) and the app's export actions
(File > Export report..., per-plot PNG / SVG / shown data as CSV)."""
import csv
import math
import time

import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.app.cli import main as cli_main
from trainspect.app.report.csv_export import export_run_csv, safe_stem, write_columns
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter
from tests.fixtures_runs import make_run
from tests.gui_helpers import open_runs

# Names that collide once sanitised, or that are unsafe as file names.
ODD_NAMES = ["train/loss", "train_loss", "../../etc/passwd", "a,b \"quoted\"", "index", "ünï/cødé", "sys/lr"]
VALUES = [1.5, math.nan, math.inf, -math.inf, 1e-300, 0.1, 123456789.125]


def write_odd_run(path):
    """A run whose metrics have awkward names and NaN/Inf values (written with the format's writer)."""
    w = RunFileWriter(path)
    w.start({"name": "odd", "config": {}, "start_time": time.time(), "schema_version": fmt.SCHEMA_VERSION})
    w.add_tags(ODD_NAMES)
    steps, tags, vals = [], [], []
    for t, _ in enumerate(ODD_NAMES):
        for s, v in enumerate(VALUES):
            steps.append(s * 10)
            tags.append(t)
            vals.append(v if t != len(ODD_NAMES) - 1 else 1e-3)
    order = np.argsort(steps, kind="stable")
    steps = np.asarray(steps)[order]
    w.append_scalars(steps, np.asarray(tags)[order], np.asarray(vals)[order], 1.7e9 + steps * 0.5)
    w.close(last_step=int(steps.max()))
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    return write_odd_run(tmp_path_factory.mktemp("odd") / "odd.h5")


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("layered") / "layered.h5", n_steps=500, n_layers=3, spike_at=250)


def test_every_scalar_gets_a_file_listed_in_the_index(odd_run, tmp_path):
    out = tmp_path / "csv"
    files = export_run_csv(open_run(odd_run), out)
    index = read_csv(out / "index.csv")
    assert index[0] == ["kind", "name", "file", "rows"]
    rows = {r[1]: r for r in index[1:]}
    assert set(rows) == set(ODD_NAMES)                 # names kept exactly, quotes and commas included
    names = [r[2] for r in index[1:]]
    assert len(set(n.lower() for n in names)) == len(names)   # no two metrics share a file
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".") and name != "index.csv"
        assert (out / name).parent == out
    assert all(p.parent == out for p in files)
    assert not (tmp_path / "etc").exists()


def test_values_round_trip_with_nan_and_inf(odd_run, tmp_path):
    out = tmp_path / "csv"
    export_run_csv(open_run(odd_run), out)
    index = {r[1]: r[2] for r in read_csv(out / "index.csv")[1:]}
    rows = read_csv(out / index["a,b \"quoted\""])
    assert rows[0] == ["step", "value", "wall_time"]
    got = [float(r[1]) for r in rows[1:]]
    assert [int(r[0]) for r in rows[1:]] == [s * 10 for s in range(len(VALUES))]
    for a, b in zip(got, VALUES):
        assert (math.isnan(a) and math.isnan(b)) or a == b            # exact, NaN/Inf included
    assert [r[1] for r in rows[1:4]] == ["1.5", "nan", "inf"]
    assert float(rows[2][2]) == 1.7e9 + 10 * 0.5


def test_pandas_reads_the_files_directly(odd_run, layered_run, tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "csv"
    export_run_csv(open_run(odd_run), out)
    index = pd.read_csv(out / "index.csv")
    f = index.loc[index["name"] == "train/loss", "file"].item()
    df = pd.read_csv(out / f)
    assert list(df.columns) == ["step", "value", "wall_time"]
    assert df["value"].dtype == np.float64
    assert np.isnan(df["value"][1]) and df["value"][2] == np.inf and df["value"][3] == -np.inf
    out2 = tmp_path / "csv2"
    export_run_csv(open_run(layered_run), out2)
    wide = pd.read_csv(out2 / "layers_grad_norm.csv")
    with open_run(layered_run) as run:
        ls = run.layer_stat("grad_norm")
    assert list(wide.columns) == ["step", *ls.layers]
    np.testing.assert_array_equal(wide["step"].to_numpy(), ls.steps)
    np.testing.assert_array_equal(wide[ls.layers[0]].to_numpy(np.float32), ls.values[:, 0])


def test_layer_statistics_are_wide_csvs(layered_run, tmp_path):
    out = tmp_path / "csv"
    done = []
    export_run_csv(open_run(layered_run), out, progress=lambda d, t, x: done.append((d, t)))
    with open_run(layered_run) as run:
        stats = run.layer_stat_names()
        ls = run.layer_stat("update_ratio")
    index = read_csv(out / "index.csv")
    assert {r[1] for r in index[1:] if r[0] == "layer_stat"} == set(stats)
    rows = read_csv(out / "layers_update_ratio.csv")
    assert rows[0] == ["step", *ls.layers]
    assert len(rows) - 1 == len(ls.steps)
    assert np.float32(rows[5][2]) == ls.values[4, 1]            # float32 text reads back exactly
    assert done[-1][0] == done[-1][1] and [d for d, _ in done] == list(range(1, done[-1][1] + 1))


def test_safe_stem_and_write_columns(tmp_path):
    taken = set()
    assert safe_stem("a/b", taken) == "a_b"
    assert safe_stem("a:b", taken) == "a_b-2"
    assert safe_stem("CON", taken) == "_CON"
    assert safe_stem("///", taken) == "metric"
    with pytest.raises(ValueError):
        write_columns(tmp_path / "x.csv", {"a": [1, 2], "b": [1.0]})


def test_cli_export(odd_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["export", str(odd_run), "--csv", str(out)]) == 0
    assert (out / "index.csv").exists()
    assert "[1/" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    assert cli_main(["export", str(bad), "--csv", str(tmp_path / "o2")]) == 2
    assert "bad.h5" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli_main(["export", str(odd_run), "--csv", str(tmp_path / "afile")]) == 2


# ------------------------------------------------------------------ the app
@pytest.fixture
def window(qtbot, layered_run):
    pytest.importorskip("pyqtgraph")
    from trainspect.app.gui.main_window import MainWindow
    from trainspect.app.gui.export_actions import install_export_actions
    from trainspect.app.gui.settings import make_settings

    w = MainWindow(settings=make_settings())
    qtbot.addWidget(w)
    w.resize(1200, 900)
    w.show()
    qtbot.waitExposed(w)
    if not hasattr(w, "export_actions"):           # main_window may already install them
        w.export_actions = install_export_actions(w)
    open_runs(w, [str(layered_run)])
    qtbot.wait(50)
    yield w
    w.close()


def _file_menu_texts(w):
    menu = next(a.menu() for a in w.menuBar().actions() if a.text().replace("&", "") == "File")
    return [a.text().replace("&", "") for a in menu.actions()]


def test_app_menu_has_export_actions_before_quit(window):
    texts = _file_menu_texts(window)
    assert "Export report…" in texts and "Export plot" in texts and "Export run to CSV…" in texts
    assert texts.index("Export report…") < texts.index("Quit")
    menu = window.export_actions["plot_menu"]
    menu.aboutToShow.emit()
    labels = [a.text() for a in menu.actions()]
    assert "train/loss" in labels and "Layer heatmap" in labels


def test_app_plot_exports_png_svg_csv(window, tmp_path):
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    from trainspect.app.gui.export_actions import export_plot_image, heatmap_columns, scalar_plot_columns
    from trainspect.app.report import export_plot_csv

    plot = window.scalars.plots["train/loss"]
    png = export_plot_image(plot, tmp_path / "p.png")
    img = QImage(str(png))
    assert not img.isNull() and img.width() >= 1000
    svg = export_plot_image(plot, tmp_path / "p.svg")
    assert QSvgRenderer(str(svg)).isValid()
    cols = scalar_plot_columns(window.scalars, "train/loss")
    rows = read_csv(export_plot_csv(tmp_path / "p.csv", cols))
    assert rows[0] == ["run", "step", "value", "smoothed"]
    values = np.array([float(r[2]) for r in rows[1:]])
    assert len(values) == 500 and values.max() == pytest.approx(values[250]) and values[250] > 10 * np.median(values)
    window.heatmap.refresh_image()
    h = read_csv(export_plot_csv(tmp_path / "h.csv", heatmap_columns(window.heatmap)))
    assert h[0][:2] == ["first_step", "last_step"] and len(h[0]) == 2 + len(window.heatmap.source.layers)
    with pytest.raises(ValueError):
        export_plot_image(plot, tmp_path / "p.gif")


def test_app_export_report_action_writes_the_report(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    target = tmp_path / "from_app.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    window.export_actions["report"].trigger()
    assert window.wait_loaded(60)          # the report is read and written on a background reader
    html = target.read_text(encoding="utf-8")
    assert "layered" in html and "<svg" in html
    assert "report written" in window.statusBar().currentMessage()


def test_app_plot_menu_exports_the_shown_data(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    target = tmp_path / "loss.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    menu = window.export_actions["plot_menu"]
    menu.aboutToShow.emit()
    sub = next(a.menu() for a in menu.actions() if a.text() == "train/loss")
    next(a for a in sub.actions() if "CSV" in a.text()).trigger()
    assert window.wait_loaded(60)          # the CSV is read and written on a background reader
    rows = read_csv(target)
    assert rows[0] == ["run", "step", "value", "smoothed"] and len(rows) == 501
    assert {r[0] for r in rows[1:]} == {"layered"}


def test_export_replaces_links_in_the_folder_never_writes_through_them(tmp_path):
    """A `train_loss.csv` (or index.csv) planted as a link to a file outside the folder was
    overwritten through the link: root exporting into a shared folder overwrote its target."""
    import os

    from tests.fixtures_runs import make_run
    from trainspect.app.cli import main
    run = make_run(tmp_path / "r.h5", n_steps=30, n_layers=1)
    out = tmp_path / "out"
    main(["export", str(run), "--csv", str(out), "-q"])
    victims = {}
    for f in [*sorted(out.glob("*.csv"))[:3], out / "index.csv"]:
        victim = tmp_path / f"victim_{f.stem}"
        victim.write_text("precious\n")
        f.unlink()
        os.symlink(victim, f)
        victims[f] = victim
    # index.csv is no export's now: refused, and forced, the links are replaced, not written through
    assert main(["export", str(run), "--csv", str(out), "-q"]) == 2
    assert main(["export", str(run), "--csv", str(out), "-q", "--force"]) == 0
    for f, victim in victims.items():
        assert victim.read_text() == "precious\n"
        assert not f.is_symlink() and f.read_text().count("\n") > 1


def test_control_characters_of_names_are_written_as_escapes(tmp_path):
    """`cat index.csv` ran a metric name's terminal escape (ESC ] 0 ; ... BEL retitles the terminal)."""
    from trainspect.recorder import Recorder

    with Recorder(tmp_path / "r.h5") as rec:
        rec.log({"\x1b]0;pwn\x07": 1.0, "loss": 2.0}, step=0)
    with open_run(tmp_path / "r.h5") as run:
        export_run_csv(run, tmp_path / "csv")
    for f in (tmp_path / "csv").iterdir():
        assert b"\x1b" not in f.read_bytes() and b"\x07" not in f.read_bytes(), f.name
    assert "\\x1b]0;pwn\\x07" in (tmp_path / "csv" / "index.csv").read_text()


def test_export_leaves_a_directory_of_other_files_alone_unless_forced(odd_run, tmp_path, capsys):
    """`export --csv DIR` wrote 44 files among unrelated ones and replaced a file of the same
    name (attack round 4, B8). Refused unless --force; re-exporting into its own output is fine."""
    from trainspect.app.cli import main

    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.csv").write_text("mine\n")
    assert main(["export", str(odd_run), "--csv", str(out)]) == 2
    assert "holds files of its own (index.csv)" in capsys.readouterr().err
    assert (out / "index.csv").read_text() == "mine\n"
    fresh = tmp_path / "fresh"
    assert main(["export", str(odd_run), "--csv", str(fresh), "-q"]) == 0
    assert main(["export", str(odd_run), "--csv", str(fresh), "-q"]) == 0      # its own files: replaced
    assert main(["export", str(odd_run), "--csv", str(out), "-q", "--force"]) == 0
    assert (out / "index.csv").read_text().startswith("kind,name,file,rows")
