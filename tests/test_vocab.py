"""One vocabulary: loss roles, severities, run states and the finding presenter, shared by every view."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainspect import Recorder, diagnose, open_run
from trainspect.analysis import Cause, Evidence, Finding
from trainspect.analysis.vocab import RunState, Severity, loss_roles

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("names, expected", [
    (["train/loss", "val/loss"], {"train": "train/loss", "val": "val/loss"}),
    (["Loss/train", "Loss/val"], {"train": "Loss/train", "val": "Loss/val"}),
    (["train_loss_step", "train_loss_epoch", "val_loss_epoch"], {"train": "train_loss_step", "val": "val_loss_epoch"}),
    (["loss", "validation_loss"], {"train": "loss", "val": "validation_loss"}),
    (["acc", "val_acc"], {}),
    (["sys/grad_norm", "ce_loss", "val/ce_loss"], {"train": "ce_loss", "val": "val/ce_loss"}),   # unconventional: "loss" names
])
def test_loss_roles_follow_the_conventions(names, expected):
    assert loss_roles(names) == expected


def test_declared_roles_win_and_absent_names_are_ignored():
    names = ["loss", "val_loss", "my_metric"]
    assert loss_roles(names, {"val": "my_metric"}) == {"train": "loss", "val": "my_metric"}
    assert loss_roles(names, {"val": "not_logged"}) == {"train": "loss", "val": "val_loss"}


def test_recorder_roles_reach_the_advisor_the_report_and_the_reader(tmp_path):
    path = tmp_path / "r.h5"
    with Recorder(path, roles={"train": "ce", "val": "held_out"}) as rec:
        for step in range(200):   # training loss falls, held-out loss rises: overfitting
            rec.log({"ce": 2.0 * 0.98 ** step, "held_out": 1.0 + 0.01 * step}, step=step)
    with open_run(path) as run:
        assert run.loss_roles() == {"train": "ce", "val": "held_out"}
        findings = diagnose(run)
    assert any(f.symptom == "overfitting" for f in findings), [f.symptom for f in findings]


@pytest.mark.parametrize("roles, problem", [({"test": "x"}, ValueError), ({"val": 3}, ValueError), (["val"], TypeError)])
def test_bad_roles_are_refused_before_anything_is_written(tmp_path, roles, problem):
    with pytest.raises(problem):
        Recorder(tmp_path / "r.h5", roles=roles)
    assert not (tmp_path / "r.h5").exists()


def test_severity_and_state_are_words_and_enums():
    f = Finding("loss_spikes", "warning", "t", 1, 2)
    assert f.severity is Severity.WARNING and f.severity == "warning"
    assert json.loads(json.dumps(f.to_dict()))["severity"] == "warning"
    assert {"warning": 1}[f.severity] == 1 and {Severity.WARNING: 1}["warning"] == 1
    with pytest.raises(ValueError):
        Finding("loss_spikes", "fatal", "t", 1, 2)
    assert RunState.CRASHED.dead and RunState.STALE.dead and not RunState.FINISHED.dead


def _finding():
    return Finding("exploding_gradients", "error", "gradients <explode>", 10, 90, layers=["0.weight"],
                   evidence=[Evidence("sys/grad_norm", "norm 1e6 at step 90", layer="0.weight")],
                   causes=[Cause("lr_too_high", 0.8, "steps too big")], fixes=["lower the LR"], confirm="rerun")


def test_one_presenter_says_the_same_words_everywhere():
    from trainspect.app.present import rich_html, text_lines, web_html

    f = _finding()
    text = "\n".join(text_lines(f))
    for out in (text, web_html(f), rich_html(f)):
        assert "steps 10–90" in out and "lr too high (strong fit)" in out and "lower the LR" in out and "rerun" in out
    assert text.startswith("ERROR [exploding_gradients]")
    assert "<explode>" not in web_html(f) and "&lt;explode&gt;" in rich_html(f)      # run text is escaped
    assert text_lines(f, brief=True) == [text.splitlines()[0], "      likely cause: lr too high (strong fit): steps too big",
                                         "      first fix: lower the LR"]


def test_no_recorder_series_name_is_spelled_outside_the_format_module():
    # "sys/..." names live in recorder/format.py; everyone else uses its constants.
    hits = [f"{p.relative_to(REPO)}:{i}" for top in ("recorder", "analysis", "app") for p in (REPO / top).rglob("*.py")
            if p.name != "format.py"
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if '"sys/' in line.split("#")[0] or "'sys/" in line.split("#")[0]]
    assert not hits, hits


def test_bounded_activations_are_one_list():
    torch = pytest.importorskip("torch")
    from trainspect.recorder import format as fmt
    from trainspect.recorder.layout import output_bounds

    assert output_bounds(torch.nn.ReLU6()) == (0.0, 6.0) and output_bounds(torch.nn.Tanh()) == (-1.0, 1.0)
    assert output_bounds(torch.nn.LogSigmoid()) is None and output_bounds(torch.nn.ReLU()) is None
    code = "from trainspect.analysis.advisor import activation_rules as a; print(sorted(a.BOUNDED_TYPES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(fmt.BOUNDED_ACTIVATIONS))
