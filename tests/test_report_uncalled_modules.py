"""Activation heatmaps of the report leave out modules that never ran as a module call.

A leaf whose forward never runs (a head kept for later, or, in files recorded before
nn.MultiheadAttention became a leaf itself, its out_proj, whose weights it uses without calling
it) has activation rows that are NaN at every record, and the report painted them as NaN/Inf
(an alarm, for a healthy model). A layer whose outputs really are NaN keeps its row and its
NaN/Inf mark.
"""
from __future__ import annotations

import pytest
import torch
from trainspect.analysis import open_run
from trainspect.app.report.content import layer_heatmap
from trainspect.recorder import Recorder


class Attention(torch.nn.Module):
    def __init__(self, broken=False):
        super().__init__()
        self.att = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = torch.nn.Linear(8, 4)
        self.spare_head = torch.nn.Linear(8, 4)   # defined, never called
        self.broken = broken

    def forward(self, x):
        y = self.fc(self.att(x, x, x)[0])
        return y * float("nan") if self.broken else y


class NanLayer(torch.nn.Module):
    def forward(self, x):
        return x * float("nan")


def _run(path, seed, model):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Recorder(path) as rec:
        rec.watch(model, opt, stats_every=1)
        for _ in range(6):
            opt.zero_grad()
            model(torch.randn(4, 5, 8)).nan_to_num().pow(2).mean().backward()
            opt.step()
    return open_run(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_module_never_called_is_left_out_and_named(tmp_path, seed):
    with _run(tmp_path / "run.h5", seed, Attention()) as run:
        fig = layer_heatmap(run, "act_dead_frac")
    assert "NaN/Inf" not in fig.svg and "spare_head" not in fig.svg and ">att (MultiheadAttention)<" in fig.svg
    assert "never called as modules (no activations to record): spare_head" in fig.caption


def test_a_layer_with_nan_outputs_keeps_its_alarm(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), NanLayer(), torch.nn.Linear(8, 4))
    with _run(tmp_path / "run.h5", 0, model) as run:
        fig = layer_heatmap(run, "act_mean")
    assert "NaN/Inf" in fig.svg and "never called" not in fig.caption
