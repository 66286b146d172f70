"""rec.log() inside a torch.compile'd function (a compiled train_step that logs its loss).

Dynamo traced into the recorder: a graph break with a warning at each value read, the frames
recompiled, ~5x the compile time of the step. Under tracing log() now hands the call to a
compiler-disabled copy of itself: the values are recorded at their steps, and dynamo meets
one clean break at the call instead of the recorder's internals.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

dynamo = pytest.importorskip("torch._dynamo")


@pytest.mark.parametrize("seed", [0, 1])
def test_log_inside_compiled_step_is_recorded_without_tracing_the_recorder(tmp_path, seed):
    torch.manual_seed(seed)
    dynamo.reset()
    dynamo.utils.counters.clear()
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rec = Recorder(tmp_path / "run.h5")

    @torch.compile(backend="eager")
    def loss_of(x):
        loss = model(x).pow(2).mean()
        rec.log({"inner/loss": loss, "inner/scale": 2.0})
        return loss

    losses = []
    for step in range(6):
        opt.zero_grad()
        loss = loss_of(torch.randn(4, 8))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    rec.close()
    with open_run(tmp_path / "run.h5") as run:
        series = run.scalar("inner/loss")
        assert series.steps.tolist() == list(range(6))
        np.testing.assert_allclose(series.values, losses, rtol=1e-6)
        assert run.scalar("inner/scale").values.tolist() == [2.0] * 6
    counters = dynamo.utils.counters
    assert not counters["unimplemented"], list(counters["unimplemented"])   # .item(), time.time(), ...
    breaks = " ".join(counters["graph_break"])
    assert "recorder.py" not in breaks.replace("Recorder.log", "")   # only the call itself
