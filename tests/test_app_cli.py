"""`trainspect open RUN --screenshot out.png`: renders offscreen and exits."""
import pytest

pytest.importorskip("PySide6")

from PySide6.QtGui import QImage  # noqa: E402

from trainspect.app.cli import main  # noqa: E402
from tests.fixtures_runs import make_corrupt_file, make_run  # noqa: E402


def test_open_screenshot_writes_png_of_requested_size(qtbot, tmp_path):
    run = make_run(tmp_path / "exp.h5", n_steps=500, spike_at=200)
    out = tmp_path / "shots" / "app.png"
    assert main(["open", str(run), "--screenshot", str(out), "--size", "1000x700"]) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1000, 700)
    # not a blank window: plots and heatmap put many distinct colours on screen
    colours = {img.pixel(x, y) for x in range(0, 1000, 7) for y in range(0, 700, 7)}
    assert len(colours) > 50


def test_open_screenshot_of_unreadable_file_fails_with_message(qtbot, tmp_path, capsys):
    bad = make_corrupt_file(tmp_path / "bad.h5")
    out = tmp_path / "bad.png"
    assert main(["open", str(bad), "--screenshot", str(out)]) == 2
    assert "bad.h5" in capsys.readouterr().err
    assert out.exists()  # the window (with its error banner) is still rendered


def test_open_screenshot_of_a_remote_run_that_cannot_open_fails_with_message(qtbot, tmp_path, capsys):
    """An ssh:// URL refused (trial 18, A1) or unreachable wrote the empty window and exited 0."""
    out = tmp_path / "remote.png"
    assert main(["open", "ssh://-oProxyCommand=true@localhost/x.h5", "--screenshot", str(out)]) == 2
    assert "is not a login name" in capsys.readouterr().err
    assert out.exists()
    run = make_run(tmp_path / "exp.h5", n_steps=50)
    assert main(["open", str(run), "ssh://-oX@localhost/x.h5", "--screenshot", str(out)]) == 0   # one opened


def test_open_rejects_bad_size(tmp_path):
    with pytest.raises(SystemExit, match="WxH|1600x1000"):
        main(["open", "--screenshot", str(tmp_path / "x.png"), "--size", "big"])


INTERACTIVE = """
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from trainspect.app.cli import main
from trainspect.app.gui.main_window import MainWindow, ensure_app

seen = {}
deadline = time.monotonic() + 60
def inspect_and_quit():
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    if (not windows or not windows[0].runs.runs()) and time.monotonic() < deadline:
        QTimer.singleShot(20, inspect_and_quit)   # the run opens on a background thread
        return
    seen["runs"] = [e.name for w in windows for e in w.runs.runs()]
    seen["title"] = windows[0].windowTitle() if windows else ""
    for w in windows:
        w.close()
    QApplication.instance().quit()

ensure_app()
QTimer.singleShot(300, inspect_and_quit)
code = main(["open", sys.argv[1]])
print(code, seen)
"""


def test_open_without_screenshot_runs_the_event_loop_with_the_runs(tmp_path):
    # In its own process: quitting the event loop runs pyqtgraph's exit clean-up, which
    # would break the linked views of every later test in this process.
    import os
    import subprocess
    import sys

    run = make_run(tmp_path / "interactive.h5", n_steps=200)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", INTERACTIVE, str(run)], capture_output=True, text=True,
                          timeout=120, cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 {'runs': ['interactive'], 'title': 'interactive — trainspect'}" in proc.stdout, proc.stdout


def test_a_screenshot_does_not_zoom_to_a_note(qtbot, tmp_path, monkeypatch):
    """A run whose only finding is a note (info: still falling at the end) was zoomed to its
    last quarter: metrics logged every 200 steps were empty panels and the start out of view.
    A warning is still shown as if clicked."""
    import numpy as np

    import trainspect.app.gui.main_window as open_cmd
    from trainspect.analysis import diagnose, open_run
    from trainspect.recorder import Recorder

    seen = {}
    real = open_cmd.render_screenshot

    def spy(window, path):
        seen[str(path).rsplit("/", 1)[-1]] = window.view.step_range
        return real(window, path)

    monkeypatch.setattr(open_cmd, "render_screenshot", spy)
    t = np.arange(600)
    cases = {"note.h5": 2.3 - 0.003 * t, "warn.h5": np.where(t < 200, 2.3 * np.exp(-t / 40) + 0.2, 0.2 + 0.01 * (t - 200))}
    for name, loss in cases.items():
        with Recorder(tmp_path / name) as rec:
            rec.log_many({"train/loss": loss * np.random.default_rng(0).lognormal(0, 0.02, 600)}, steps=t)
            rec.log_many({"eval/acc": np.array([0.1, 0.5, 0.8])}, steps=np.array([0, 200, 400]))
        with open_run(tmp_path / name) as run:
            severities = [f.severity for f in diagnose(run)]
        assert severities and (severities[0] == "info") == (name == "note.h5"), severities
        assert main(["open", str(tmp_path / name), "--screenshot", str(tmp_path / f"{name}.png")]) == 0
    shots = dict(seen)
    assert shots["note.h5.png"] is None
    assert shots["warn.h5.png"] is not None


def test_a_sweep_larger_than_the_open_file_limit_opens_what_fits_and_says_so(tmp_path):
    """300 runs under `ulimit -n 256`: the app opened runs until no descriptor was left, and the
    screenshot, the temp-dir clean-up and exports then failed with tracebacks."""
    import os
    import resource
    import shutil
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    first = make_run(sweep / "r0.h5", n_steps=50, n_layers=1)
    for i in range(1, 160):
        shutil.copy(first, sweep / f"r{i}.h5")
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "open", str(sweep), "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=root, env=env, preexec_fn=limit)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.exists(), text[-3000:]
    assert "of 160 runs: the open-file limit (ulimit -n 128)" in text, text[-3000:]
    assert "Traceback" not in text and "too many open files" not in text, text[-3000:]
