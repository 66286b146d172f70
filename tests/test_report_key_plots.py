"""The report's key plots on what nanoGPT's trial showed them wrong.

- "Dead units" and "Saturated activations" heatmaps were drawn for every run over every module:
  a GELU/LayerNorm transformer's Linear, LayerNorm, Dropout and lm_head rows read 0.47-0.69
  "dead" (healthy: half a LayerNorm's outputs are <= 0), and the saturation heatmap was a page
  of zeros. Each is drawn only over the modules where the advisor reads it, or not at all.
- Their rows were cut from the front ("…rmer.h.0.attn.c_attn (Linear)") where the gradient
  heatmap strips the prefix every parameter shares ("h.0.attn.c_attn.weight").
- A script that logs ``lr`` beside the recorder's ``sys/lr`` got an "lr" and a "Learning rate"
  plot with the same curve.
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from trainspect.analysis import open_run
from trainspect.app.report.content import key_figures, layer_heatmap
from trainspect.recorder import Recorder

DEAD, SATURATED = "Dead units per module (fraction)", "Saturated activations per module (fraction)"


class Block(torch.nn.Module):
    def __init__(self, act):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(16)
        self.attn = torch.nn.Module()
        self.attn.c_attn = torch.nn.Linear(16, 16)
        self.attn.c_proj = torch.nn.Linear(16, 16)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(16, 32)
        self.mlp.act = act
        self.mlp.c_proj = torch.nn.Linear(32, 16)
        self.mlp.dropout = torch.nn.Dropout(0.0)

    def forward(self, x):
        x = x + self.attn.c_proj(self.attn.c_attn(self.ln_1(x)))
        h = self.mlp.c_fc(x)
        h = self.mlp.act(h) if self.mlp.act is not None else F.relu(h)
        return x + self.mlp.dropout(self.mlp.c_proj(h))


class TinyGPT(torch.nn.Module):
    """nanoGPT's layout: every parameter under ``transformer.``, lm_head tied to wte."""

    def __init__(self, act):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(11, 16)
        self.transformer.h = torch.nn.ModuleList([Block(act()) if act else Block(None) for _ in range(2)])
        self.transformer.ln_f = torch.nn.LayerNorm(16)
        self.lm_head = torch.nn.Linear(16, 11, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def _run(path, act, lr_logged=lambda lr: lr):
    torch.manual_seed(0)
    model = TinyGPT(act)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / 8)
    with Recorder(path) as rec:
        rec.watch(model, opt, stats_every=1)
        for step in range(8):
            idx = torch.randint(0, 11, (4, 6))
            loss = F.cross_entropy(model(idx).flatten(0, 1), idx.flatten())
            opt.zero_grad()
            loss.backward()
            rec.log({"train/loss": loss.item(), "lr": lr_logged(opt.param_groups[0]["lr"])}, step=step)
            opt.step()
            sched.step()
    return open_run(path)


def _figures(run) -> dict:
    return {f.title: f for f in key_figures(run)}


def _rows(fig) -> list:
    """The heatmap's row labels ("name (Type)"), less its title."""
    return [r for r in re.findall(r">([^<>]*\([A-Za-z]+\))</text>", fig.svg) if r != fig.title]


def test_a_gelu_transformer_gets_no_dead_unit_or_saturation_heatmap(tmp_path):
    with _run(tmp_path / "gelu.h5", torch.nn.GELU) as run:
        figs = _figures(run)
    assert DEAD not in figs and SATURATED not in figs, list(figs)
    assert "Gradient norm per parameter" in figs


@pytest.mark.parametrize("act, shown, left_out", [
    (torch.nn.ReLU, DEAD, SATURATED),
    (torch.nn.Tanh, SATURATED, DEAD),
])
def test_the_heatmap_shows_only_the_activations_it_means_something_for(tmp_path, act, shown, left_out):
    with _run(tmp_path / "run.h5", act) as run:
        figs = _figures(run)
    assert left_out not in figs, list(figs)
    name = act.__name__
    assert _rows(figs[shown]) == [f"transformer.h.{i}.mlp.act ({name})" for i in (0, 1)]
    assert "elsewhere it means nothing" in figs[shown].caption


def test_dead_units_behind_a_functional_relu_show_the_pre_activations(tmp_path):
    """No activation module (F.relu in forward()): the Linear outputs the advisor reads, less
    the output projections (c_proj) and the logits (lm_head)."""
    with _run(tmp_path / "functional.h5", None) as run:
        figs = _figures(run)
    rows = _rows(figs[DEAD])
    assert rows == ["h.0.attn.c_attn (Linear)", "h.0.mlp.c_fc (Linear)", "h.1.attn.c_attn (Linear)",
                    "h.1.mlp.c_fc (Linear)"], rows
    assert SATURATED not in figs


def test_module_rows_lose_the_prefix_the_parameters_share(tmp_path):
    with _run(tmp_path / "gelu.h5", torch.nn.GELU) as run:
        rows = _rows(layer_heatmap(run, "act_std"))
    assert "h.0.attn.c_attn (Linear)" in rows and "lm_head (Linear)" in rows, rows
    assert not [r for r in rows if r.startswith("…")], rows


def test_a_logged_copy_of_the_recorded_lr_is_plotted_once(tmp_path):
    with _run(tmp_path / "same.h5", torch.nn.GELU) as run:
        assert "lr" not in _figures(run) and "Learning rate" in _figures(run)
    with _run(tmp_path / "other.h5", torch.nn.GELU, lr_logged=lambda lr: 2 * lr) as run:
        assert {"lr", "Learning rate"} <= set(_figures(run))    # another curve: both


def test_steps_read_as_steps_not_scientific_notation():
    """'5e4 1e5 1.5e5' on a 200k-step run's axis, 'NaN/Inf from step 1.7e5' (trial 14 UX L7)."""
    from trainspect.app.report.svgplot import fmt_step

    assert [fmt_step(x) for x in (0, 50, 2500, 50_000, 150_000.0)] == ["0", "50", "2,500", "50k", "150k"]
    assert fmt_step(170_000, tick=False) == "170,000" and fmt_step(123_457) == "123,457"
    assert fmt_step(0.5) == "0.5"
