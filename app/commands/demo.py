"""``trainspect demo``: train a small model with a planted convergence problem and watch the
advisor name it.

The training (torch on CPU, sklearn's bundled digits) runs in a subprocess,
``python -m trainspect.recorder.examples.digits``, so the app never imports torch. With a display the
app opens and tails the run live; with none (``QT_QPA_PLATFORM`` unset and no ``DISPLAY``
or ``WAYLAND_DISPLAY`` on Linux) or with ``--headless`` the run is recorded at full speed,
the findings are printed and an offscreen screenshot of the app is written.

Exit code: 0 = the advisor named the planted problem (or found nothing on ``healthy``),
1 = it did not, 2 = the demo could not run (missing torch / scikit-learn, training failed).
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainspect.analysis import RunFileError, open_run

from ..display import display_problem, has_display
from ..present import text_lines
from .open import parse_size

DEFAULT_SCENARIO = "lr-too-high"
DEFAULT_OUT = "trainspect-demo"
TRAINER = "trainspect.recorder.examples.digits"
OPEN_TIMEOUT_S = 120       # torch's first import on a cold machine can take a while


def add_arguments(parser) -> None:
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, metavar="NAME",
                        help=f"planted problem (default {DEFAULT_SCENARIO}; --list shows all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="training steps (default: the scenario's, 400 for most)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the run file and screenshot (default ./{DEFAULT_OUT})")
    parser.add_argument("--headless", action="store_true",
                        help="no window: record, print the findings, write a screenshot (automatic without a display)")
    parser.add_argument("--pace", type=float, default=0.05, metavar="S",
                        help="with the app: at least S seconds per step so the curves grow visibly (default 0.05)")
    parser.add_argument("--size", default="1600x1000", metavar="WxH", help="window / screenshot size")


# ------------------------------------------------------------------ helpers
def repo_root() -> Path:
    """The folder holding the ``app`` and ``recorder`` packages (source checkout or site-packages)."""
    return Path(__file__).resolve().parents[2]


def trainer_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def missing_dependencies() -> list[str]:
    # find_spec looks for the package without importing it (the app never imports torch).
    wanted = {"torch": "torch", "sklearn": "scikit-learn"}
    return [pip for mod, pip in wanted.items() if importlib.util.find_spec(mod) is None]


def load_scenarios() -> dict:
    proc = subprocess.run([sys.executable, "-m", TRAINER, "--list"], capture_output=True, text=True,
                          env=trainer_env(), timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot list the demo scenarios: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def start_training(scenario: str, steps, path: Path, pace: float, quiet: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", TRAINER, "--scenario", scenario, "--out", str(path), "--flush-every", "0.25",
           "--pace", str(pace)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if quiet:
        cmd.append("--quiet")
    return subprocess.Popen(cmd, env=trainer_env())


def stop_training(proc: subprocess.Popen) -> None:
    """Ask the trainer to stop (Ctrl-C: its run file ends as "finished"), then insist."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def names_problem(finding, expected: dict) -> bool:
    top = finding.causes[0].id if finding.causes else None
    return finding.severity != "info" and (finding.symptom in expected["symptoms"] or top in expected["causes"])


def best_match(findings, expected: dict):
    """The finding that shows the planted problem best (the scenario lists its symptoms in that order)."""
    hits = [f for f in findings if names_problem(f, expected)]
    order = {s: i for i, s in enumerate(expected["symptoms"])}
    return min(hits, key=lambda f: order.get(f.symptom, len(order)), default=None)


def headline(findings, expected: dict) -> tuple[bool, str]:
    """(the advisor named the planted problem, one sentence saying so)."""
    warnings = [f for f in findings if f.severity != "info"]
    if not expected["symptoms"]:
        if warnings:
            return False, f"healthy run, but the advisor warns: {warnings[0].title}"
        return True, "healthy run: the advisor found nothing to warn about"
    hits = [f for f in findings if names_problem(f, expected)]
    if not hits:
        return False, "the advisor did not name the planted problem (yet): try more --steps"
    causes = [f.causes[0].id for f in hits if f.causes]
    cause = max(set(causes), key=causes.count) if causes else None
    seen = "; ".join(f.title for f in hits[:3])
    lead = f"likely cause: {cause.replace('_', ' ')}" if cause else f"symptom: {hits[0].symptom.replace('_', ' ')}"
    return True, f"the advisor names the problem -- {lead} (seen as: {seen})"


def wait_until_readable(path: Path, proc: subprocess.Popen, timeout: float):
    """Open the run once the trainer has written its header; None if the trainer died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                run = open_run(path)
                run.scalar_names()
                return run
            except RunFileError:
                pass
        if proc.poll() is not None and not path.exists():
            return None
        if proc.poll() is not None:
            try:
                return open_run(path)
            except RunFileError:
                return None
        time.sleep(0.1)
    return None


# ------------------------------------------------------------------ headless
def run_headless(args, expected: dict, path: Path, shot: Path) -> int:
    t0 = time.monotonic()
    proc = start_training(args.scenario, args.steps, path, pace=0.0, quiet=False)
    rc = proc.wait()
    if rc != 0:
        print(f"trainspect demo: the training subprocess failed (exit {rc})", file=sys.stderr)
        return 2
    print(f"trained in {time.monotonic() - t0:.1f} s; the advisor's findings:")
    from trainspect.analysis import diagnose

    try:
        with open_run(path) as run:
            findings = list(diagnose(run))
            status = run.status().describe()
    except RunFileError as exc:
        print(f"trainspect demo: {exc}", file=sys.stderr)
        return 2
    print(f"{path.name}: {status}")
    for f in findings:
        for line in text_lines(f, brief=True):
            print(line)
    if not findings:
        print("no findings")
    named, sentence = headline(findings, expected)
    print(f"\n==> {sentence}\n")
    shot_note = write_screenshot(path, shot, expected, args.size)
    print("files:")
    print(f"  run file:   {path}")
    print(f"  screenshot: {shot_note}")
    print(f"look at it:   trainspect open {path}")
    return 0 if named else 1


def write_screenshot(path: Path, shot: Path, expected: dict, size: str) -> str:
    """Render the app offscreen with the finding that names the problem selected."""
    if "PySide6" not in sys.modules:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        from trainspect.app.gui.demo_window import write_screenshot as render
    except ImportError as exc:
        return f"not written ({exc.name} is not installed: pip install 'trainspect[app]')"
    return render(path, shot, expected, size)


def run_live(args, expected: dict, path: Path) -> int:
    try:
        from trainspect.app.gui.demo_window import run_live as live
    except ImportError as exc:
        print(f"trainspect demo: the app needs {exc.name} (pip install 'trainspect[app]'); "
              "or run `trainspect demo --headless`", file=sys.stderr)
        return 2
    return live(args, expected, path)


def run(args) -> int:
    try:
        sys.stdout.reconfigure(line_buffering=True)   # progress shows at once, also through a pipe
    except (AttributeError, ValueError):
        pass
    missing = missing_dependencies()
    if missing:
        print(f"trainspect demo: the demo trains a small model and needs {' and '.join(missing)}: "
              f"pip install {' '.join(missing)}", file=sys.stderr)
        return 2
    try:
        scenarios = load_scenarios()
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"trainspect demo: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for name, sc in scenarios.items():
            print(f"{name:14s} {sc['about']}")
        return 0
    if args.scenario not in scenarios:
        print(f"trainspect demo: unknown scenario {args.scenario!r}; choose one of: {', '.join(scenarios)}",
              file=sys.stderr)
        return 2
    try:   # before the training, not after it
        parse_size(args.size)
    except ValueError as exc:
        print(f"trainspect demo: {exc}", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 20:
        print(f"trainspect demo: --steps must be at least 20 (the advisor needs a few points), got {args.steps}",
              file=sys.stderr)
        return 2
    expected = scenarios[args.scenario]
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"trainspect demo: cannot create {out}: {exc}", file=sys.stderr)
        return 2
    path = out / f"demo-{args.scenario}.h5"
    shot = out / f"demo-{args.scenario}.png"
    print(f"trainspect demo: scenario {args.scenario}: {expected['about']}")
    if args.headless or not has_display():
        return run_headless(args, expected, path, shot)
    problem = display_problem()
    if problem:
        print(f"trainspect demo: cannot open a window ({problem}); running headless instead", file=sys.stderr)
        return run_headless(args, expected, path, shot)
    return run_live(args, expected, path)
