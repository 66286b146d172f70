"""benchmarks/gpu_check.py is run once per GPU session, with minutes of device time and no
second chance: its CPU smoke test (tiny models, the recorder forced onto its GPU code path,
every mode and patch of the real run) must pass here first."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_every_mode_on_the_cpu_code_path():
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--steps", "3", "--reps", "1",
                          "--warmup", "2"], capture_output=True, text=True, timeout=240)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "FAIL" not in text, text[-3000:]
    assert "CPU smoke test: ok" in text
    # Every mode of both models reached the table, and the goals were evaluated.
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for model in ("MLP", "Transformer"):
        for mode in ("bare", "recorder, default schedules", "recorder, all instruments every step",
                     "per-step, non-finite counts off", "per-step, no gradient record (hooks, LR, loss)"):
            assert any(r.startswith(f"| {model} ") and f"| {mode} |" in r for r in rows), (model, mode)
    assert text.count("default instruments x") == 2
