"""Input statistics of a sparse batch (bag-of-words, one-hot features) count its zeros.

The stored values alone read a 1 %-dense 0/5 input as mean 5, std 0 (the advisor's
unnormalised-inputs check then looked at the wrong numbers), and on the GPU path a sparse
input switched every per-layer instrument off ("reshape is not implemented for sparse
tensors"). Both paths are checked here, the GPU one through ``_device_path`` as in test_sync_free.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


class BagOfWords(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.fc = torch.nn.Linear(vocab, 4)

    def forward(self, x):
        return self.fc(x)


def _batch(seed, vocab=500):
    gen = torch.Generator().manual_seed(seed)
    dense = (torch.rand(16, vocab, generator=gen) < 0.02).float() * 3.0
    dense -= (torch.rand(16, vocab, generator=gen) < 0.005).float() * 2.0
    return dense


def _sparse(dense, layout):
    if layout == "coo":
        return dense.to_sparse()
    if layout == "coo uncoalesced":   # every stored value split in two halves at the same index
        coo = dense.to_sparse()
        idx, val = coo.indices(), coo.values()
        return torch.sparse_coo_tensor(torch.cat([idx, idx], 1), torch.cat([val / 2, val / 2]), dense.shape,
                                       check_invariants=True)
    return dense.to_sparse_csr()


@pytest.mark.parametrize("device_path", [False, True])
@pytest.mark.parametrize("layout", ["coo", "coo uncoalesced", "csr"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_input_statistics_are_those_of_the_dense_batch(tmp_path, device_path, layout, seed):
    torch.manual_seed(seed)
    dense = _batch(seed)
    model = BagOfWords(dense.shape[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run.h5"
    rec = Recorder(path, _device_path=device_path)
    rec.watch(model, opt, stats_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=Warning)
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for _ in range(3):
            opt.zero_grad()
            loss = model(_sparse(dense, layout)).pow(2).mean()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
        rec.close()
    want = [dense.mean().item(), dense.std(unbiased=False).item(), dense.min().item(), dense.max().item()]
    with open_run(path) as run:
        got = [run.scalar(f"sys/input_{k}").values for k in ("mean", "std", "min", "max")]
        assert all(len(g) == 3 for g in got)
        np.testing.assert_allclose([g[-1] for g in got], want, rtol=1e-5, atol=1e-7)
        assert "act_mean" in run.layer_stat_names()   # the other instruments kept running


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_input_with_nothing_stored_reads_all_zero(tmp_path, seed):
    model = BagOfWords(50)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(tmp_path / "run.h5", _device_path=bool(seed))
    rec.watch(model, opt, stats_every=1)
    opt.zero_grad()
    model(torch.zeros(4, 50).to_sparse()).sum().backward()
    opt.step()
    rec.log({"loss": 0.0})
    rec.close()
    with open_run(tmp_path / "run.h5") as run:
        assert [run.scalar(f"sys/input_{k}").values[-1] for k in ("mean", "std", "min", "max")] == [0, 0, 0, 0]
