"""`trainspect diagnose RUN [--json]`: output and exit codes (0 healthy, 1 warnings, 2 unreadable)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from trainspect.app.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_healthy_run_exits_0(scenario_runs, capsys):
    path = scenario_runs.path("healthy_mlp_sgd_momentum")
    assert main(["diagnose", path]) == 0
    out = capsys.readouterr().out
    assert "healthy_mlp_sgd_momentum" in out and "no problems found" in out


def test_warning_run_exits_1_and_explains(scenario_runs, capsys):
    path = scenario_runs.path("lr_too_low")
    assert main(["diagnose", path]) == 1
    out = capsys.readouterr().out
    assert "[no_progress]" in out and "likely cause: lr too low" in out and "fix 1: raise the learning rate" in out


def test_json_output_has_the_documented_keys(scenario_runs, capsys):
    path = scenario_runs.path("layer_missing_from_optimizer")
    assert main(["diagnose", path, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"] == "layer_missing_from_optimizer"
    f = next(f for f in doc["findings"] if f["symptom"] == "frozen_layers")
    for key in ("symptom", "severity", "first_step", "last_step", "layers", "evidence", "causes", "fixes"):
        assert key in f
    assert f["causes"][0]["id"] == "optimizer_setup"
    assert set(f["causes"][0]) >= {"id", "confidence", "why"}
    assert f["layers"] == ["0.weight", "0.bias"]


def test_unreadable_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    assert main(["diagnose", str(bad)]) == 2
    assert "notes.h5" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "missing.h5")]) == 2


def test_console_entry_point_in_a_fresh_process(scenario_runs):
    path = scenario_runs.path("lr_too_low")
    proc = subprocess.run([sys.executable, "-m", "trainspect.app.cli", "diagnose", path, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["symptom"] == "no_progress"


def test_chain_shows_in_text_and_json(scenario_runs, capsys):
    """nan_inf after the gradient norm grew: the growth is its own finding and nan_inf's precursor."""
    path = scenario_runs.path("nan_from_huge_lr")
    assert main(["diagnose", path]) == 1
    text = capsys.readouterr().out
    assert "started by: [exploding_gradients] the gradient norm grew 10^" in text
    assert text.count("reduce the learning rate 10x") == 1          # a report lists each fix once
    assert "same as fix" in text
    assert main(["diagnose", path, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    nan = next(f for f in doc["findings"] if f["symptom"] == "nan_inf")
    assert nan["precursor"]["symptom"] == "exploding_gradients"
    assert nan["precursor"]["first_step"] < nan["first_step"]
    growth = next(f for f in doc["findings"] if f["symptom"] == "exploding_gradients")
    assert growth["facts"]["leads_to"] == "nan_inf"
    assert all(set(x) == {"id", "text"} for x in nan["fixes"])


def test_lr_sweep_beside_the_run_is_quoted_in_the_lr_fix(scenario_runs, tmp_path, capsys):
    from tests.fixtures_runs import digits_lr_sweep

    result = digits_lr_sweep(tmp_path / "sweep.h5", steps=60)
    assert result.lr is not None
    assert main(["diagnose", scenario_runs.path("lr_too_low"), "--lr-sweep", str(tmp_path / "sweep.h5")]) == 1
    out = capsys.readouterr().out
    assert f"set the LR to {result.lr:.3g}" in out
    assert main(["diagnose", scenario_runs.path("lr_too_low"), "--lr-sweep", scenario_runs.path("lr_too_low")]) == 2
    assert "not an LR range test" in capsys.readouterr().err


def test_a_sweep_file_without_a_suggestion_is_described_not_a_traceback(tmp_path, capsys):
    """An LR range test whose loss never fell has no suggested LR: diagnose raised
    TypeError formatting None (info, report and the app handled the same file)."""
    import torch

    from trainspect import lr_range_test
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(10)]

    def train_step(batch):
        x, _ = batch
        opt.zero_grad()
        loss = (model(x) * 0).sum() + 1.0          # a flat loss: nothing to suggest
        loss.backward()
        opt.step()
        return loss

    result = lr_range_test(model, opt, batches, train_step, str(tmp_path / "flat.h5"), steps=20)
    assert result.lr is None
    assert main(["diagnose", str(tmp_path / "flat.h5")]) == 0
    assert "no suggestion" in capsys.readouterr().out


def test_notes_after_no_problems_found_are_announced(tmp_path, capsys):
    """"no problems found" followed straight by a finding read as a contradiction."""
    import numpy as np
    from trainspect.recorder import Recorder

    rng = np.random.default_rng(0)
    with Recorder(tmp_path / "r.h5") as rec:
        for step in range(300):      # still falling steadily at the end: a note (slow_convergence)
            rec.log({"loss": float((2.3 - 1.5 * step / 300) * np.exp(0.02 * rng.standard_normal()))})
    assert main(["diagnose", str(tmp_path / "r.h5")]) == 0
    out = capsys.readouterr().out
    assert "no problems found among what it could check; 1 note:" in out and "info  [slow_convergence]" in out


def test_a_pointer_to_earlier_fixes_names_them_in_order_as_ranges():
    """"same as fixes 4, 1, 2, 3, 8, 9, 5, 6 for nan_inf above" read as a puzzle (trial 14)."""
    from types import SimpleNamespace as NS

    from trainspect.app.present import _fix_items

    fixes = [NS(id=f"f{k}", text=f"fix text {k}") for k in (4, 1, 2, 3, 8, 9, 5, 6)]
    earlier = {f"f{k}": ("nan_inf", k) for k in range(1, 10)}
    assert _fix_items(NS(fixes=fixes), earlier) == [("", "same as fixes 1–6, 8, 9 for nan_inf above")]
    assert _fix_items(NS(fixes=fixes[1:3]), earlier) == [("", "same as fixes 1, 2 for nan_inf above")]
