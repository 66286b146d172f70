"""A LoRA-style run: the base frozen with requires_grad=False, a small head trained. The advisor
called the frozen base a finding ("28 parameter(s) have no gradient (frozen)", likely cause
"optimizer setup 60 %", fix "use He init") on every parameter-efficient fine-tune. The recorder
now notes which parameters were frozen at watch(); the advisor leaves those out and still
reports a trainable layer that never gets a gradient (defined but unused by the forward)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.app.cli import main
from trainspect.recorder import Recorder

torch.set_num_threads(1)


class Tuned(nn.Module):
    def __init__(self, unused_head):
        super().__init__()
        self.base = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)
        self.spare = nn.Linear(32, 3) if unused_head else None    # built, never called

    def forward(self, x):
        return self.head(self.base(x))


def run_file(path, seed, unused_head=False):
    torch.manual_seed(seed)
    model = Tuned(unused_head)
    model.base.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    data = torch.Generator().manual_seed(seed)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(30):
            x, y = torch.randn(32, 8, generator=data), torch.randint(0, 3, (32,), generator=data)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": loss})
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_base_frozen_on_purpose_is_no_finding(tmp_path, seed, capsys):
    path = run_file(tmp_path / "lora.h5", seed)
    assert "frozen_layers" not in {f.symptom for f in diagnose(path)}
    assert main(["info", str(path)]) == 0
    assert "(1,344 frozen)" in capsys.readouterr().out      # 8*32+32 + 32*32+32 parameters
    from trainspect.app.report.content import run_summary

    with open_run(path) as run:                            # the report's and the app's summaries
        assert "(1,344 frozen)" in dict(run_summary(run)[0])["model"]
        pytest.importorskip("PySide6")
        from trainspect.app.gui.widgets.details import run_details_html

        assert "1,344 frozen" in run_details_html(run)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_trainable_layer_the_forward_never_uses_is_still_reported(tmp_path, seed):
    path = run_file(tmp_path / "spare.h5", seed, unused_head=True)
    found = {f.symptom: f for f in diagnose(path)}["frozen_layers"]
    assert found.layers == ["spare.weight", "spare.bias"] and found.severity == "info"
    assert "not used by the forward" in found.evidence[0].text
    assert open_run(path).meta["model"]["frozen_params"] == [0, 1, 2, 3]


def test_the_report_leaves_the_frozen_rows_out_of_its_parameter_heatmaps(tmp_path):
    from trainspect.app.report.content import layer_heatmap

    path = run_file(tmp_path / "lora.h5", 0)
    with open_run(path) as run:
        grads = layer_heatmap(run, "grad_norm")
        acts = layer_heatmap(run, "act_std")
    assert "4 frozen parameters (requires_grad=False) not shown" in grads.caption
    assert "base.0.weight" not in grads.svg and "head.weight" in grads.svg
    assert "frozen" not in acts.caption                  # modules, not parameters: all shown
