"""nanoGPT restarted from its checkpoint (the steps after it written again): the never-called
module's (attn_dropout under flash attention) all-NaN activation column read as "ERROR nan_inf
from step 0": the advisor counted the superseded rows as rows of its tables."""
from __future__ import annotations

import pytest
import torch
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


class NetWithUnusedLeaf(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 32), torch.nn.Linear(32, 1)
        self.unused_dropout = torch.nn.Dropout(0.0)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _train(path, seed, start, stop, **kw):
    torch.manual_seed(seed * 1000 + start)
    model = NetWithUnusedLeaf()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(512, 8), torch.randn(512, 1)
    with Recorder(path, stats_every=5, **kw) as rec:
        rec.watch(model, opt)
        if start:
            rec.set_step(start)
        for step in range(start, stop):
            i = torch.randint(0, 512, (32,))
            loss = torch.nn.functional.mse_loss(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss}, step=step)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_resumed_run_with_a_never_called_module_is_not_nan(tmp_path, seed):
    path = tmp_path / "r.h5"
    _train(path, seed, 0, 121)
    _train(path, seed, 100, 201, resume=True)
    with open_run(path) as run:
        assert "nan_inf" not in [f.symptom for f in diagnose(run)]
