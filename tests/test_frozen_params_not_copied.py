"""Fine-tuning a small head on a frozen base (LoRA-style), with an EMA teacher that is frozen
but moved in place: the weight record copies only what can change (a copy of a frozen 7B base
at each scheduled step is gigabytes on a GPU), and the updates stay exact: 0 for the frozen
base, the teacher's from its first change on."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 12


def weights_record(rec):
    return next(r for r in rec._instruments.records if type(r).__name__ == "Weights")


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frozen_parameters_are_not_copied_and_their_updates_stay_exact(tmp_path, seed, device_path):
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    head, teacher = nn.Linear(64, 3), nn.Linear(64, 3)
    for p in [*base.parameters(), *teacher.parameters()]:
        p.requires_grad_(False)
    model = nn.ModuleDict({"base": base, "head": head, "teacher": teacher})
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(seed)
    before, after, copied = [], [], []

    def weights():
        return [p.detach().clone() for p in model.parameters()]
    with Recorder(tmp_path / "run.h5", _device_path=device_path) as rec:
        rec.watch(model, opt)
        record = weights_record(rec)
        for step in range(STEPS):
            if step:
                after.append(weights())
            x, y = torch.randn(8, 16, generator=data), torch.randint(0, 3, (8,), generator=data)
            h = model["base"](x)
            loss = F.cross_entropy(model["head"](h), y) + 0.0 * model["teacher"](h).sum()
            opt.zero_grad()
            loss.backward()
            before.append(weights())
            opt.step()
            prev = record.prev
            copied.append(sum(t.numel() for t in prev))
            with torch.no_grad():                         # the EMA teacher follows the head
                for t, s in zip(teacher.parameters(), head.parameters()):
                    t.mul_(0.9).add_(s, alpha=0.1)
            rec.log({"train/loss": loss})
        after.append(weights())
    n_head, n_teacher = sum(p.numel() for p in head.parameters()), sum(p.numel() for p in teacher.parameters())
    assert copied == [n_head] + [n_head + n_teacher] * (STEPS - 1)   # never the base
    expected = np.array([[float(torch.linalg.vector_norm(a - b)) for a, b in zip(after[t], before[t])]
                         for t in range(STEPS)])
    with open_run(tmp_path / "run.h5") as run:
        upd = run.layer_stat("update_norm")
        assert upd.steps.tolist() == list(range(STEPS))
        names = [p.name for p in run.params]
        base_cols = [i for i, n in enumerate(names) if n.startswith("base.")]
        teacher_cols = [i for i, n in enumerate(names) if n.startswith("teacher.")]
        assert (upd.values[:, base_cols] == 0).all()
        assert all(math.isnan(v) for v in upd.values[0, teacher_cols])   # changed, not copied yet
        others = [i for i in range(len(names)) if i not in base_cols]
        np.testing.assert_allclose(upd.values[1:, others], expected[1:, others], rtol=1e-4, atol=1e-7)
        ratio = run.layer_stat("update_ratio").values
        assert (ratio[:, base_cols] == 0).all()
