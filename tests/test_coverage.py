"""The advisor says what it could not check on imported and loss-only runs (coverage), and reads
a logged learning rate / gradient norm where the recorder's own series are missing."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.analysis.advisor import coverage, diagnose
from trainspect.analysis.advisor.coverage import INSTRUMENTS
from trainspect.analysis.advisor.registry import SYMPTOM_IDS
from trainspect.analysis.advisor.signals import extract
from trainspect.analysis.vocab import logged_stand_ins
from trainspect.app.cli import main
from trainspect.recorder import format as fmt
from trainspect.recorder.importers import convert


def imported_run(tmp_path, seed, n=200, names=("train_loss", "lr-Adam", "grad_norm"), nan_grad_at=None):
    rng = np.random.default_rng(seed)
    loss = np.linspace(2.0, 0.4, n) * (1 + 0.02 * rng.standard_normal(n))
    grad = 1.0 + 0.1 * rng.standard_normal(n)
    if nan_grad_at is not None:
        grad[nan_grad_at:] = np.nan
        loss[nan_grad_at + 5:] = np.nan      # the loss follows a few steps later
    lines = ["step," + ",".join(names)]
    lines += [f"{s},{float(loss[s])!r},1e-3,{float(grad[s])!r}" for s in range(n)]
    src = tmp_path / f"log{seed}.csv"
    src.write_text("\n".join(lines) + "\n")
    convert(src, tmp_path / f"run{seed}.h5")
    return tmp_path / f"run{seed}.h5"


@pytest.mark.parametrize("seed", [0, 1])
def test_an_imported_run_says_which_instruments_were_missing(tmp_path, capsys, seed):
    path = imported_run(tmp_path, seed)
    cov = coverage(path)
    missing = {g.instrument: g for g in cov.gaps}
    assert set(missing) == {"validation_loss", "gradients", "activations", "weight_snapshots", "inputs"}
    assert missing["gradients"].cannot_check == ["vanishing_gradients", "exploding_gradients", "frozen_layers"]
    assert missing["gradients"].text.startswith("no per-layer gradients: record with trainspect")
    assert cov.stand_ins == {fmt.SYS_LR: "lr-Adam", fmt.SYS_GRAD_NORM: "grad_norm"}
    assert main(["diagnose", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "dead_units" in {s for g in out["not_checked"] for s in g["cannot_check"]}
    assert out["read_from_logs"] == {"sys/lr": "lr-Adam", "sys/grad_norm": "grad_norm"}
    main(["diagnose", str(path)])
    text = capsys.readouterr().out
    assert "no problems found among what it could check" in text
    assert "no per-layer gradients: could not check vanishing/exploding gradients" in text
    assert "learning rate <- lr-Adam" in text


def test_a_run_without_any_loss_is_one_gap_not_two(tmp_path):
    path = imported_run(tmp_path, 0, names=("accuracy", "lr", "gradient_norm"))
    ids = [g.instrument for g in coverage(path).gaps]
    assert "loss" in ids and "validation_loss" not in ids


def test_a_watched_run_with_validation_loss_misses_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    from trainspect import Recorder

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "w.h5", stats_every=1, hist_every=1, snapshot_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(20):        # the curve rules' minimum: a shorter loss is a gap of its own
            loss = torch.nn.functional.mse_loss(model(torch.randn(16, 4)), torch.randn(16, 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item(), "val/loss": loss.item()})
    cov = coverage(tmp_path / "w.h5")
    assert cov.gaps == [] and cov.stand_ins == {} and cov.lines() == []


def test_logged_gradient_norm_stands_in_for_the_recorders(tmp_path):
    path = imported_run(tmp_path, 2, nan_grad_at=120)
    with open_run(path) as run:
        sig = extract(run)
        assert sig.stand_ins == {fmt.SYS_LR: "lr-Adam", fmt.SYS_GRAD_NORM: "grad_norm"}
        (nan,) = [f for f in diagnose(run) if f.symptom == "nan_inf"]
    assert nan.first_step == 120                       # seen in the logged norm, before the loss
    assert nan.evidence[0].series == "grad_norm"       # named as the user logged it


def test_framework_names_map_to_the_recorders_series():
    assert logged_stand_ins(["loss", "train/learning_rate", "train/grad_norm"]) == {
        fmt.SYS_LR: "train/learning_rate", fmt.SYS_GRAD_NORM: "train/grad_norm"}
    assert logged_stand_ins(["lr-AdamW/pg1", "lr-AdamW/pg2"]) == {fmt.SYS_LR: "lr-AdamW/pg1"}
    assert logged_stand_ins([fmt.SYS_LR, "lr", fmt.SYS_GRAD_NORM, "grad_norm"]) == {}


def test_coverage_names_only_symptoms_the_advisor_has():
    for inst in INSTRUMENTS:
        assert set(inst.symptoms) <= set(SYMPTOM_IDS), inst.id


def test_report_lists_what_was_not_checked(tmp_path):
    path = imported_run(tmp_path, 3)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html"), "-q"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Not checked" in html and "no per-layer gradients" in html and "lr-Adam" in html


def test_a_run_with_only_a_validation_loss_says_the_training_loss_is_missing(tmp_path):
    """The app and diagnose said "no problems found" for a run that logged val/loss only: the
    overfitting check needs the training loss too, and nothing said it was missing."""
    from trainspect.analysis.advisor.coverage import coverage
    from trainspect.recorder import Recorder
    with Recorder(tmp_path / "v.h5") as rec:
        for s in range(0, 200, 10):
            rec.log({"val/loss": 1.0 / (s + 1)}, step=s)
    gaps = {g.instrument: g for g in coverage(tmp_path / "v.h5").gaps}
    assert "training_loss" in gaps and "overfitting" in gaps["training_loss"].text
    assert "loss" not in gaps and "validation_loss" not in gaps
