"""Layer names longer than the run file's 128 bytes (deeply nested or generated module paths)
were cut there without a word: a module's weight and bias got the same name, a cut could split
a UTF-8 character. They are stored with their start and end around a hash, distinct, and the
user is told once."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.format import NAME_LEN
from trainspect.recorder.warning import RecorderWarning


@pytest.mark.parametrize("stem", ["encoder_" + "é" * 60, "block_" + "x" * 200])
def test_long_names_stay_distinct_whole_characters_and_warned(tmp_path, stem):
    model = nn.Sequential()
    model.add_module(stem, nn.Linear(3, 2))
    model.add_module(stem + "_2", nn.Linear(2, 1))          # same first 128 bytes as the first
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RecorderWarning, match="stored shortened"), Recorder(tmp_path / "r.h5") as rec:
        rec.watch(model, opt)
        for s in range(3):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "r.h5") as run:
        names = [p.name for p in run.params]
        modules = [m.name for m in run.modules]
        grads = run.layer_stat("grad_norm")
    assert len(set(names)) == 4 and all(len(n.encode("utf-8")) <= NAME_LEN for n in names)
    assert [n.rsplit(".", 1)[1] for n in names] == ["weight", "bias", "weight", "bias"]
    assert all("\ufffd" not in n for n in names + modules)
    assert {n.rsplit(".", 1)[0] for n in names} <= set(modules)     # params still point at their module
    assert grads.values.shape[1] == 4
