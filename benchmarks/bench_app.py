"""Desktop-app speed figures (offscreen Qt, this machine).

    python benchmarks/bench_app.py [--out bench-out] [--quick]

1. open a run with 4 metrics x 1 M steps to first paint          (target <= 0.5 s)
2. pan/zoom redraw with 10 M points in view                      (target <= 16 ms)
3. layer heatmap of 500 layers x 100 k steps: load, pan/zoom     (stays interactive)
4. memory: resident-set growth vs. file size                     (follows the screen)

Files are written once into --out (gitignored bench-out/) and reused.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TRAINSPECT_SETTINGS", str(Path(os.environ.get("TMPDIR", "/tmp")) / "trainspect-bench.ini"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))



def rss_mb(field: str = "VmRSS") -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_files(out: Path, quick: bool):
    from tests.fixtures_runs import make_run

    out.mkdir(parents=True, exist_ok=True)
    n1 = 100_000 if quick else 1_000_000
    n10 = 1_000_000 if quick else 10_000_000
    nh = 10_000 if quick else 100_000
    files = {
        "scalars": out / f"scalars_4x{n1}.h5",
        "dense": out / f"dense_1x{n10}.h5",
        "layers": out / f"layers_500x{nh}.h5",
    }
    t = time.perf_counter()
    if not files["scalars"].exists():
        make_run(files["scalars"], n_steps=n1, metrics=("train/loss", "train/acc", "train/lr", "train/grad"),
                 n_layers=0, spike_at=n1 // 3, chunk_steps=250_000)
    if not files["dense"].exists():
        make_run(files["dense"], n_steps=n10, metrics=("train/loss",), n_layers=0, spike_at=n10 // 3,
                 chunk_steps=1_000_000)
    if not files["layers"].exists():
        make_run(files["layers"], n_steps=nh, metrics=("train/loss",), n_layers=250, stats_every=nh,
                 hist_every=nh, snapshot_every=nh, chunk_steps=5_000)
    print(f"# test files ready in {time.perf_counter() - t:.1f} s: "
          + ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in files.items()))
    return files


def paint(app, window) -> None:
    app.processEvents()
    window.grab()          # paints every visible widget synchronously


def bench_open(app, path) -> dict:
    from trainspect.app.gui.main_window import MainWindow

    times = []
    for _ in range(3):
        window = MainWindow()
        window.resize(1600, 1000)
        window.show()
        app.processEvents()
        t = time.perf_counter()
        window.open_paths([path])
        window.wait_loaded()   # files open on background threads
        paint(app, window)
        times.append(time.perf_counter() - t)
        n = sum(len(c.steps) for c in window.scalars.curves.values())
        window.advisor.wait(300)
        window.close()
        window.deleteLater()
        app.processEvents()
    return {"open_to_first_paint_s": min(times), "open_runs_s": times, "points": n}


COLD_OPEN = """
import os, sys, time
sys.path.insert(0, {repo!r})
from trainspect.app.gui.main_window import MainWindow, ensure_app
app = ensure_app()
window = MainWindow()
window.resize(1600, 1000)
window.show()
app.processEvents()
t = time.perf_counter()
window.open_paths([{path!r}])
window.wait_loaded()   # files open on background threads
app.processEvents()
window.grab()
print(time.perf_counter() - t)
"""


def bench_cold_open(path, repeats: int = 3) -> list[float]:
    """Open-to-first-paint in a fresh process each time (what `trainspect open RUN` does)."""
    import subprocess

    code = COLD_OPEN.format(repo=str(Path(__file__).resolve().parents[1]), path=str(path))
    out = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def bench_pan(app, path) -> dict:
    from trainspect.app.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    window.open_paths([path])
    window.wait_loaded()   # files open on background threads
    window.view.set_smoothing(0.0)       # one curve: the raw 10 M points
    window.advisor.wait(300)
    paint(app, window)
    curve = next(iter(window.scalars.curves.values()))
    n = curve.n_points
    canvas = window.scalars.canvas
    vb = next(iter(window.scalars.plots.values())).getViewBox()

    def redraw_times(ranges):
        out = []
        for lo, hi in ranges:
            t = time.perf_counter()
            vb.setXRange(lo, hi, padding=0)
            app.processEvents()
            canvas.viewport().repaint()
            out.append((time.perf_counter() - t) * 1e3)
        return out

    # everything in view, panned by 1 % each frame (the full 10 M points stay in view)
    full = [(-k * n / 100, n - k * n / 100) for k in range(10)]
    zoom = [(n * 0.5 - n / 2 ** k, n * 0.5 + n / 2 ** k) for k in range(1, 12)]
    redraw_times(full[:2])  # warm up
    t_full = redraw_times(full)
    t_zoom = redraw_times(zoom)
    shown = len(curve.raw.getData()[0])
    window.close()
    return {"points": n, "pan_full_view_ms_median": statistics.median(t_full), "pan_full_view_ms_max": max(t_full),
            "zoom_ms_median": statistics.median(t_zoom), "zoom_ms_max": max(t_zoom), "points_drawn_last": shown}


def bench_heatmap(app, path) -> dict:
    from trainspect.app.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    rss0 = rss_mb()
    t = time.perf_counter()
    window.open_paths([path])
    window.wait_loaded()   # files open on background threads
    paint(app, window)
    t_open = time.perf_counter() - t
    hm = window.heatmap
    src = hm.source
    rss1 = rss_mb()
    hwm1 = rss_mb("VmHWM")
    t = time.perf_counter()
    window.advisor.wait(300)   # the advisor reads every table on its own thread; measure after it
    t_advisor = time.perf_counter() - t + t_open
    rss_adv = rss_mb()
    vb = hm.plot.getViewBox()
    n = src.n_rows
    times_pan, times_zoom, times_exact = [], [], []
    for k in range(8):          # zoomed out: pan the whole view
        lo = -n * 0.01 * k
        t = time.perf_counter()
        vb.setXRange(lo, lo + n, padding=0)
        hm.refresh_image(exact=False)   # what the user sees while dragging
        app.processEvents()
        hm.canvas.viewport().repaint()
        times_pan.append((time.perf_counter() - t) * 1e3)
    for k in range(1, 9):       # zoom in step by step around the middle
        half = n / 2 ** (k + 1)
        t = time.perf_counter()
        vb.setXRange(n / 2 - half, n / 2 + half, padding=0)
        hm.refresh_image(exact=False)
        app.processEvents()
        hm.canvas.viewport().repaint()
        times_zoom.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        hm.refresh_image(exact=True)    # the refinement once the view rests
        times_exact.append((time.perf_counter() - t) * 1e3)
    shape = hm.image.image.shape
    held = (src.steps.nbytes + src.overview.nbytes + sum(c.nbytes for c in src._columns.values())
            + hm.shown.nbytes + hm.image.image.nbytes) / 1e6
    rss2 = rss_mb()
    window.close()
    return {"rows": n, "layers": len(src.layers), "open_to_first_paint_s": t_open,
            "pan_ms_median": statistics.median(times_pan), "pan_ms_max": max(times_pan),
            "zoom_ms_median": statistics.median(times_zoom), "zoom_ms_max": max(times_zoom),
            "image_shape_last": shape, "rss_growth_mb": rss2 - rss0, "rss_after_open_mb": rss1 - rss0,
            "rss_after_advisor_mb": rss_adv - rss0, "advisor_done_s": t_advisor,
            "peak_before_advisor_mb": hwm1 - rss0, "peak_with_advisor_mb": rss_mb("VmHWM") - rss0,
            "exact_ms_median": statistics.median(times_exact), "exact_ms_max": max(times_exact),
            "table_mb": n * len(src.layers) * 4 / 1e6,
            "held_mb": held}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--quick", action="store_true", help="10x smaller files (smoke test)")
    args = parser.parse_args()
    files = make_files(Path(args.out), args.quick)
    from trainspect.app.gui.main_window import ensure_app

    app = ensure_app()
    r = bench_heatmap(app, files["layers"])
    print(f"heatmap {r['layers']} layers x {r['rows']:,} steps: open+first paint {r['open_to_first_paint_s']:.2f} s; "
          f"pan median {r['pan_ms_median']:.1f} ms (max {r['pan_ms_max']:.1f}); zoom median {r['zoom_ms_median']:.1f} ms "
          f"(max {r['zoom_ms_max']:.1f}); exact re-pool after zoom median {r['exact_ms_median']:.0f} ms "
          f"(max {r['exact_ms_max']:.0f}); image {r['image_shape_last']}")
    print(f"memory for a {r['table_mb']:.0f} MB layer table: heatmap holds {r['held_mb']:.1f} MB "
          f"(steps + pooled overview + shown image); process RSS +{r['rss_after_open_mb']:.0f} MB after first paint "
          f"(peak +{r['peak_before_advisor_mb']:.0f} MB), +{r['rss_after_advisor_mb']:.0f} MB after the advisor's "
          f"background diagnosis ({r['advisor_done_s']:.1f} s; peak +{r['peak_with_advisor_mb']:.0f} MB), "
          f"+{r['rss_growth_mb']:.0f} MB after pan/zoom")
    r = bench_open(app, files["scalars"])
    cold = bench_cold_open(files["scalars"])
    print(f"open 4 metrics x {r['points'] // 4:,} steps -> first paint (target <= 500 ms): fresh process "
          f"{', '.join(f'{x * 1e3:.0f}' for x in cold)} ms; in a process that opened it before "
          f"{', '.join(f'{x * 1e3:.0f}' for x in r['open_runs_s'])} ms")
    r = bench_pan(app, files["dense"])
    print(f"pan with {r['points']:,} points in view: median {r['pan_full_view_ms_median']:.1f} ms, "
          f"max {r['pan_full_view_ms_max']:.1f} ms (target <= 16 ms); zoom median {r['zoom_ms_median']:.1f} ms, "
          f"max {r['zoom_ms_max']:.1f} ms; points drawn {r['points_drawn_last']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
