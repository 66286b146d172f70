"""Two optimizers on one model (Muon-style: SGD on the matrices, watched; AdamW on the biases,
stepping after it): at step 0 the biases' update_norm was exactly 0 (torch's global hook had
not yet shown the second optimizer when the watched one's step ended); 0 reads as "frozen"."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


def test_the_other_optimizers_update_is_measured_from_the_first_step(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    mats = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    o1, o2 = torch.optim.SGD(mats, lr=0.05, momentum=0.9), torch.optim.AdamW(rest, lr=3e-3)
    x, y = torch.randn(64, 8), (torch.randn(64) > 0).long()
    true = []
    with Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, o1)
        for _ in range(5):
            before = model[0].bias.detach().clone()
            loss = nn.functional.cross_entropy(model(x), y)
            o1.zero_grad()
            o2.zero_grad()
            loss.backward()
            o1.step()
            o2.step()
            rec.log({"train/loss": loss.item()})
            true.append(float((model[0].bias - before).norm()))
    with open_run(tmp_path / "r.h5") as run:
        u = run.layer_stat("update_norm")
        got = np.asarray(u.values)[:, list(u.layers).index("0.bias")]
    np.testing.assert_allclose(got, true, rtol=1e-4)
