"""Trainable layers cut off from the loss. With reentrant ``torch.utils.checkpoint`` over a
batch that does not require grad, or a ``.detach()`` between the encoder and the head, the
layers before the cut never get a gradient and only the head trains. torch prints one
UserWarning, and our advisor filed it as info ("have no gradient (frozen)", likely cause "bad
init 30 %"), so ``diagnose`` said "no problems found". The recorder now notes which trainable
parameters the watched optimizer holds. The advisor warns when the model's first trainable
layers, all in the optimizer, get no gradient while later ones do, and names the cut
(``graph_detached``). A backbone frozen by ``torch.no_grad()`` and left out of the optimizer
stays info."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder

torch.set_num_threads(1)


class EncoderHead(nn.Module):
    def __init__(self, cut):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
        self.head = nn.Linear(32, 3)
        self.cut = cut

    def forward(self, x):
        if self.cut == "detach":
            return self.head(self.encoder(x).detach())
        if self.cut == "reentrant":
            return self.head(checkpoint(self.encoder, x, use_reentrant=True))
        if self.cut == "no_grad":
            with torch.no_grad():
                feats = self.encoder(x)
            return self.head(feats)
        return self.head(checkpoint(self.encoder, x, use_reentrant=False))


def record(path, seed, cut, head_only=False):
    torch.manual_seed(seed)
    model = EncoderHead(cut)
    opt = torch.optim.Adam(model.head.parameters() if head_only else model.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(seed)
    with Recorder(path, stats_every=1) as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # torch's reentrant-checkpoint warning
        rec.watch(model, opt)
        for _ in range(30):
            x, y = torch.randn(32, 8, generator=data), torch.randint(0, 3, (32,), generator=data)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
    return path


@pytest.mark.parametrize("cut", ["detach", "reentrant"])
@pytest.mark.parametrize("seed", [0, 1])
def test_layers_cut_off_from_the_loss_are_a_warning_that_names_the_cut(tmp_path, seed, cut):
    found = {f.symptom: f for f in diagnose(record(tmp_path / "cut.h5", seed, cut))}["frozen_layers"]
    assert found.severity == "warning"
    assert found.layers == ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"]
    assert found.causes[0].id == "graph_detached"
    assert "cut off from the loss" in found.evidence[0].text
    assert any("use_reentrant=False" in fix.text for fix in found.fixes)


@pytest.mark.parametrize("seed", [0, 1])
def test_non_reentrant_checkpointing_is_healthy(tmp_path, seed):
    assert "frozen_layers" not in {f.symptom for f in diagnose(record(tmp_path / "ok.h5", seed, None))}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_backbone_under_no_grad_left_out_of_the_optimizer_stays_advice(tmp_path, seed):
    path = record(tmp_path / "fx.h5", seed, "no_grad", head_only=True)
    found = {f.symptom: f for f in diagnose(path)}["frozen_layers"]
    assert found.severity == "info"
    assert "the optimizer does not hold them" in found.evidence[0].text
    assert open_run(path).meta["model"]["unoptimized_params"] == [0, 1, 2, 3]


def test_the_same_backbone_in_the_optimizer_is_a_warning(tmp_path):
    """torch.no_grad() around layers the optimizer is meant to train: a cut, not a choice."""
    path = record(tmp_path / "fx.h5", 0, "no_grad")
    assert open_run(path).meta["model"]["unoptimized_params"] == []
    assert {f.symptom: f for f in diagnose(path)}["frozen_layers"].severity == "warning"
