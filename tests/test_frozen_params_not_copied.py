"""Fine-tuning a small head on a frozen base (LoRA-style), with an EMA teacher that is frozen
but moved in place: the weight record copies only what can change (a copy of a frozen 7B base
at each scheduled step is gigabytes on a GPU), and the updates stay exact: 0 for the frozen
base; the teacher's, when its EMA falls in the measured window (a second optimizer makes the
window the whole iteration: records/weights.py), NaN at its first change and measured after."""
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


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("optimizers", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frozen_parameters_are_not_copied_and_their_updates_stay_exact(tmp_path, seed, optimizers, device_path):
    from trainspect.recorder.records import weights as weights_module

    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    head, teacher = nn.Linear(64, 3), nn.Linear(64, 3)
    for p in [*base.parameters(), *teacher.parameters()]:
        p.requires_grad_(False)
    model = nn.ModuleDict({"base": base, "head": head, "teacher": teacher})
    opts = ([torch.optim.AdamW(head.parameters(), lr=1e-2)] if optimizers == 1 else
            [torch.optim.AdamW([head.weight], lr=1e-2), torch.optim.SGD([head.bias], lr=0.1)])
    data = torch.Generator().manual_seed(seed)
    before, after, copied = [], [], []
    take = weights_module.Weights._take

    def counting_take(self, step, wall):
        take(self, step, wall)
        copied.append(sum(self.w.params[i].numel() for i in self._kept))
    weights_module.Weights._take = counting_take

    def weights():
        return [p.detach().clone() for p in model.parameters()]
    try:
        with Recorder(tmp_path / "run.h5", _device_path=device_path) as rec:
            rec.watch(model, opts[0])
            for step in range(STEPS):
                if step:
                    after.append(weights())
                x, y = torch.randn(8, 16, generator=data), torch.randint(0, 3, (8,), generator=data)
                h = model["base"](x)
                loss = F.cross_entropy(model["head"](h), y) + 0.0 * model["teacher"](h).sum()
                for opt in opts:
                    opt.zero_grad()
                loss.backward()
                before.append(weights())
                for opt in opts:
                    opt.step()
                with torch.no_grad():                         # the EMA teacher follows the head
                    for t, s in zip(teacher.parameters(), head.parameters()):
                        t.mul_(0.9).add_(s, alpha=0.1)
                rec.log({"train/loss": loss})
            after.append(weights())
    finally:
        weights_module.Weights._take = take
    n_head, n_teacher = sum(p.numel() for p in head.parameters()), sum(p.numel() for p in teacher.parameters())
    # never the base; the teacher from its first change on, when that change is in the window
    # (two optimizers: a head parameter outside the watched one: every window, step 0's too, ends
    # at the next forward; the teacher's change in step 0's window makes it NaN there, copied after)
    assert copied == ([n_head] * STEPS if optimizers == 1 else [n_head] + [n_head + n_teacher] * (STEPS - 1))
    expected = np.array([[float(torch.linalg.vector_norm(a - b)) for a, b in zip(after[t], before[t])]
                         for t in range(STEPS)])
    with open_run(tmp_path / "run.h5") as run:
        upd = run.layer_stat("update_norm")
        assert upd.steps.tolist() == list(range(STEPS))
        names = [p.name for p in run.params]
        cols = {part: [i for i, n in enumerate(names) if n.startswith(part + ".")] for part in ("base", "head", "teacher")}
        assert (upd.values[:, cols["base"]] == 0).all()
        assert (run.layer_stat("update_ratio").values[:, cols["base"]] == 0).all()
        np.testing.assert_allclose(upd.values[:, cols["head"]], expected[:, cols["head"]], rtol=1e-4, atol=1e-7)
        teacher_updates = upd.values[:, cols["teacher"]]
        if optimizers == 1:                      # the EMA runs after the step's window
            assert (teacher_updates == 0).all()
        else:
            assert all(math.isnan(v) for v in teacher_updates[0])    # changed in place, not copied yet
            np.testing.assert_allclose(teacher_updates[1:], expected[1:, cols["teacher"]], rtol=1e-4, atol=1e-7)
