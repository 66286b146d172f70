"""nan_inf on a distributed run (trial 17, F10): a NaN batch on rank 1 reaches rank 0's weights
through the gradient all-reduce one step later. Rank 0's file read "lr too high (strong fit)"
while the same bug in one process read "a non-finite input batch"; the rank that went
non-finite first, and its own sys/input_* statistics, decide the cause."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _ddp_in_one_process(tmp_path, monkeypatch, seed, *, bad, steps=60, at=30):
    """Two ranks stepped in lockstep, their gradients averaged as DDP's all-reduce does.
    ``bad``: "input" (a NaN in rank 1's batch at ``at``) or "loss" (rank 1's loss overflows
    at ``at`` from finite inputs)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    base = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    models = [base, nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))]
    models[1].load_state_dict(base.state_dict())
    opts = [torch.optim.SGD(m.parameters(), lr=0.05) for m in models]
    for var, value in (("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29511")):
        monkeypatch.setenv(var, value)
    recs = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        recs.append(Recorder(tmp_path / "exp.h5"))
        recs[-1].watch(models[rank], opts[rank])
    for step in range(steps):
        losses = []
        for rank, (model, rec) in enumerate(zip(models, recs)):
            x = torch.randn(32, 8, generator=g)
            if rank == 1 and step == at and bad == "input":
                x[3, 2] = float("nan")
            loss = F.cross_entropy(model(x), (x[:, 0] > 0).long())
            if rank == 1 and step == at and bad == "loss":
                loss = loss * float("inf")
            opts[rank].zero_grad()
            loss.backward()
            losses.append(loss)
        for ps in zip(*(m.parameters() for m in models)):     # the all-reduce: every rank gets the mean
            mean = sum(p.grad for p in ps) / len(ps)
            for p in ps:
                p.grad = mean.clone()
        for rank, rec in enumerate(recs):
            opts[rank].step()
            rec.log({"train/loss": losses[rank].item()})
    for rec in recs:
        rec.close()
    return {f.symptom: f for f in diagnose(tmp_path / "exp.h5")}


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_a_nan_batch_on_another_rank_is_named_on_rank_zeros_file(tmp_path, monkeypatch, seed):
    found = _ddp_in_one_process(tmp_path, monkeypatch, seed, bad="input")
    f = found["nan_inf"]
    assert f.title.startswith("a non-finite input batch on rank 1 at step 30"), f.title
    assert f.causes[0].id == "rank_local_data"
    assert "lr_too_high" not in [c.id for c in f.causes[:2]]
    assert "rank 1" in f.fixes[0].text
    assert found["rank_nonfinite_first"].ranks == [1]


@pytest.mark.parametrize("seed", (0, 1))
def test_a_rank_whose_loss_overflowed_from_finite_inputs_is_not_called_a_nan_batch(tmp_path, monkeypatch, seed):
    f = _ddp_in_one_process(tmp_path, monkeypatch, seed, bad="loss")["nan_inf"]
    assert "input batch" not in f.title
    assert not f.facts.get("input_nonfinite")
