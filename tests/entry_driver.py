"""Run every reading entry point on many files in one process, as a user would call them.

Used by the fuzz and hostile-file tests: ``python tests/entry_driver.py OUT_DIR FILE...`` prints
one JSON line per (file, entry point) with its exit code, whether a traceback escaped and the
last line of its stderr. A watchdog (faulthandler) ends the process if one call takes longer
than ``TRAINSPECT_ENTRY_TIMEOUT`` seconds; before each call the driver writes what it is about
to run to stderr, so the parent test can name the file that hung (or crashed the process).
"""
from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ENTRIES = ("info", "diagnose", "report", "export", "api")


def _call(entry: str, path: str, out_dir: Path) -> int:
    from trainspect.app.cli import main

    if entry == "info":
        return main(["info", path])
    if entry == "diagnose":
        return main(["diagnose", "--json", path])
    if entry == "report":
        return main(["report", "-q", path, "-o", str(out_dir / "report.html")])
    if entry == "export":
        return main(["export", "-q", path, "--csv", str(out_dir / "csv")])
    # The Python API, as a notebook uses it: open_run, then the advisor.
    from trainspect.analysis import RunFileError, diagnose, open_run

    try:
        with open_run(path) as run:
            diagnose(run)
            run.scalar_names(), run.layer_stat_names(), run.status()
    except RunFileError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 2
    return 0


def run_one(entry: str, path: str, out_dir: Path) -> dict:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    tb = ""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = _call(entry, path, out_dir)
    except SystemExit as exc:   # argparse and friends
        rc = exc.code if isinstance(exc.code, int) else 2
    except BaseException:   # noqa: BLE001 -- this is what the test counts
        rc = -1
        tb = traceback.format_exc()
    text = err.getvalue()
    if "Traceback (most recent call last)" in text:
        tb = tb or text
    return {"file": path, "entry": entry, "rc": rc, "traceback": tb[-3000:],
            "stderr": text.strip().splitlines()[-1][-400:] if text.strip() else "",
            "stdout": out.getvalue()[-4000:] if entry == "info" else "",
            "seconds": round(time.monotonic() - start, 3)}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    timeout = float(os.environ.get("TRAINSPECT_ENTRY_TIMEOUT", "30"))
    real_stderr = sys.stderr
    for path in argv[1:]:
        for entry in ENTRIES:
            print(f"RUNNING {entry} {path}", file=real_stderr, flush=True)
            faulthandler.dump_traceback_later(timeout, exit=True, file=real_stderr)
            result = run_one(entry, path, out_dir)
            faulthandler.cancel_dump_traceback_later()
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ------------------------------------------------------------------ the parent's side
@dataclass
class Batches:
    """What the driver processes reported: one result per (file, entry point), and how each
    process ended (a hang ends in the watchdog's exit 1, a segfault in a negative code)."""
    results: list = field(default_factory=list)
    failures: list = field(default_factory=list)   # (what happened, the file it was running, stderr tail)

    def problems(self) -> list:
        """Every hang, crash and traceback, in words a failing test can print."""
        out = [f"{what} on {where}: {tail}" for what, where, tail in self.failures]
        out += [f"traceback in {r['entry']} {r['file']}:\n{r['traceback']}" for r in self.results if r["traceback"]]
        return out


def run_batches(files, out_dir, workers: int = 2, entry_timeout: float = 30.0) -> Batches:
    """Run every entry point on every file in ``workers`` driver processes at once."""
    files = [str(f) for f in files]
    groups = [files[i::workers] for i in range(workers)]
    env = {**os.environ, "TRAINSPECT_ENTRY_TIMEOUT": str(entry_timeout)}
    procs = []
    for i, group in enumerate(g for g in groups if g):
        procs.append(subprocess.Popen([sys.executable, __file__, str(Path(out_dir) / f"w{i}"), *group],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                      errors="surrogateescape"))
    batches = Batches()
    for proc in procs:
        out, err = proc.communicate()
        batches.results += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0:
            running = [line for line in err.splitlines() if line.startswith("RUNNING ")]
            what = "hang (watchdog)" if "Timeout" in err else f"process died (exit {proc.returncode})"
            batches.failures.append((what, running[-1] if running else "?", err[-2000:]))
    return batches
