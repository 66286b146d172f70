"""A backbone trained earlier in the process, then frozen (requires_grad=False) for a fine-tune of a
new head, keeps the .grad of its last step: the fine-tune's optimizer does not hold it, so no
zero_grad() clears it. The advisor read that stale gradient as "never updated: optimizer setup"
right above its own line saying those parameters are frozen on purpose and not judged."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1])
def test_a_frozen_backbone_with_gradients_left_from_pretraining_is_not_reported(tmp_path, seed):
    torch.manual_seed(seed)
    x = torch.randn(512, 16)
    y = (x @ torch.randn(16, 4)).argmax(1)
    backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
    pre = nn.Sequential(backbone, nn.Linear(32, 4))
    opt = torch.optim.Adam(pre.parameters(), lr=1e-3)
    for _ in range(20):                      # pretraining: leaves .grad on the backbone
        i = torch.randint(0, 512, (32,))
        opt.zero_grad()
        nn.functional.cross_entropy(pre(x[i]), y[i]).backward()
        opt.step()
    backbone.requires_grad_(False)
    assert backbone[0].weight.grad is not None
    model = nn.Sequential(backbone, nn.Linear(32, 4))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for _ in range(120):
            i = torch.randint(0, 512, (32,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    assert [f.title for f in diagnose(tmp_path / "r.h5") if f.symptom == "frozen_layers"] == []
