"""How long the window stops answering while a detail panel reads its run.

A 10 ms QTimer ticks while each tab (Layers, Distributions, Run details) is brought to the front
on a run with many layer records; the longest gap between two ticks, minus the 10 ms period,
is the time the GUI thread was busy in one piece (a read on the GUI thread shows up whole).
Also the time until the panel shows its data. Run it against two source trees by PYTHONPATH to
compare them (the run file is made once and shared):

    python benchmarks/bench_panel_freeze.py --run /tmp/panel_freeze.h5 [--steps 100000 --layers 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def make(path: Path, steps: int, layers: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fixtures_runs import make_run

    make_run(path, n_steps=steps, n_layers=layers, stats_every=1, hist_every=100, snapshot_every=100,
             metrics=("train/loss",))


def measure(path: Path) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from trainspect.app.gui.main_window import MainWindow
    from trainspect.app.gui.settings import make_settings

    w = MainWindow(settings=make_settings())
    w.resize(1400, 950)
    w.tabs.setCurrentWidget(w.lr_sweep)      # no detail panel visible while the run opens
    w.show()
    w.open_paths([str(path)])
    w.wait_loaded(600)
    if hasattr(w, "advisor"):
        w.advisor.wait()
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    shown = {
        "heatmap": lambda p: p.source is not None and p.image.image is not None,
        "distributions": lambda p: p.hist_image_data.size > 0,
        "details": lambda p: "max step" in p.text.toPlainText(),
    }
    out = {}
    for name, done in shown.items():
        panel = getattr(w, name)
        for _ in range(20):                  # settle
            app.processEvents()
            time.sleep(0.005)
        ticks.clear()
        t0 = time.perf_counter()
        w.tabs.setCurrentWidget(panel)
        while not done(panel) and time.perf_counter() - t0 < 600:
            app.processEvents()
            time.sleep(0.001)
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < 0.1:   # a few ticks after
            app.processEvents()
            time.sleep(0.001)
        marks = [t0] + ticks
        gap = max(b - a for a, b in zip(marks, marks[1:])) if len(marks) > 1 else t1 - t0
        out[name] = {"shown_s": round(t1 - t0, 4), "longest_freeze_ms": round(max(0.0, gap - 0.010) * 1e3, 1)}
        w.tabs.setCurrentWidget(w.lr_sweep)
    timer.stop()
    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="run file (made if missing)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    if not args.run.exists():
        make(args.run, args.steps, args.layers)
    print(json.dumps(measure(args.run)))


if __name__ == "__main__":
    main()
