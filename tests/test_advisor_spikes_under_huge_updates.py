"""Loss spikes while the updates reach a large share of the weights in one step are the LR's,
not bad batches: an MLP at SGD lr 1.5 momentum 0.9 (its ReLUs dying, blamed on the LR) got
"label noise 70 %" for its spikes (trial 14 UX review)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _run(path, seed):
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(2048, 32, generator=g), torch.randn(32, 10, generator=g)
    y = (X @ W + 0.5 * torch.randn(2048, 10, generator=g)).argmax(1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), 1.5, momentum=0.9)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(300):
            idx = torch.randint(0, 2048, (64,), generator=g)
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
    return diagnose(path)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_spikes_under_huge_updates_blame_the_lr(tmp_path, seed):
    findings = _run(tmp_path / "run.h5", seed)
    for f in findings:
        if f.causes and f.severity != "info":
            assert f.causes[0].id == "lr_too_high", (f.symptom, f.causes[0])
    assert findings
