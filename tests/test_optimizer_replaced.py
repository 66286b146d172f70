"""A new optimizer made mid-training (a second fine-tuning phase) was seen only after its first
step: that step had a loss but no sys/lr, sys/grad_norm or gradient records. Calling
watch(model, new_optimizer) warned "watch() called a second time; this call is ignored" while
the new optimizer was in fact recorded."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder


@pytest.mark.parametrize("rewatch", [False, True])
def test_a_new_optimizer_is_recorded_from_its_first_step(tmp_path, rewatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = torch.randn(64, 8), (torch.randn(64) > 0).long()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "r.h5") as rec:
            rec.watch(model, opt)
            for step in range(40):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
                if step == 19:
                    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)   # phase 2
                    if rewatch:
                        rec.watch(model, opt)
    assert not [w for w in caught if "second time" in str(w.message)]
    with open_run(tmp_path / "r.h5") as run:
        for name in ("sys/lr", "sys/grad_norm"):
            assert run.scalar(name).steps.tolist() == list(range(40)), name
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(40))
        lr = run.scalar("sys/lr")
        assert lr.values[19] == pytest.approx(3e-3) and lr.values[20] == pytest.approx(0.01)
