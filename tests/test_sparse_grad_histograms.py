"""nn.Embedding(sparse=True): the gradient histogram counted only the rows the sparse gradient
stores (20 of 80 elements), against FORMAT.md's "counts of a finite tensor sum to its numel";
the zero gradients of the rows not in the batch were missing from it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 4, sparse=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


@pytest.mark.parametrize("device_path", [False, True])
def test_a_sparse_gradients_histogram_counts_every_element(tmp_path, device_path):
    torch.manual_seed(0)
    model = Bag()
    sparse_opt = torch.optim.SparseAdam(list(model.emb.parameters()), lr=1e-2)
    opt = torch.optim.Adam(model.fc.parameters(), lr=1e-2)
    ids = torch.randint(0, 5, (32, 6))                # 5 of the 20 rows get a gradient
    y = (ids[:, 0] > 2).long()
    with Recorder(tmp_path / "r.h5", hist_every=1, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(ids), y)
            sparse_opt.zero_grad()
            opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "r.h5") as run:
        h = run.histograms("grad")
        emb = list(h.layers).index("emb.weight")
        counts = np.asarray(h.counts)[:, emb]
        lo, hi = np.asarray(h.ranges)[:, emb].T
    assert counts.sum(axis=1).tolist() == [80, 80, 80]
    assert (lo <= 0).all() and (hi >= 0).all()        # the zeros are in range
