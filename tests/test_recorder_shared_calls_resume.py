"""A resumed run of a model with a shared activation (one ``self.relu`` after each conv,
torchvision's ResNet blocks): its first session gave the later calls rows of their own
(``relu#2``), which watch() in the resumed session cannot know before a forward. The layouts
read as different, and the resumed segment lost every per-layer statistic ("the model's layers
differ from those of the run being resumed"). The resumed session now measures into the file's
rows."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

torch.set_num_threads(1)


class SharedRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)


class Other(SharedRelu):
    def __init__(self):
        super().__init__()
        self.conv3 = nn.Conv2d(8, 2, 3, padding=1)      # another shape: a different model


def session(path, model, opt, steps, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, **kw) as rec:
            rec.watch(model, opt)
            for _ in range(steps):
                loss = model(torch.randn(4, 1, 8, 8)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_resumed_run_measures_the_later_calls_in_the_files_rows(tmp_path, seed):
    torch.manual_seed(seed)
    path, model = tmp_path / "r.h5", SharedRelu()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    assert session(path, model, opt, 3) == []
    said = session(path, model, opt, 3, resume=True)
    assert said == [], said
    with open_run(path) as run:
        st = run.layer_stat("act_frac_nonpos")
        assert st.layers == ["relu", "conv1", "conv2", "relu#2", "conv3"]
        assert st.steps.tolist() == list(range(6))
        assert np.isfinite(st.values).all()
        col = {name: st.values[:, n] for n, name in enumerate(st.layers)}
        # each row holds its own call in the resumed steps too: a ReLU's zeros are its input's <= 0
        np.testing.assert_allclose(col["relu#2"], col["conv2"], atol=1e-6)
        np.testing.assert_allclose(col["relu"], col["conv1"], atol=1e-6)
        assert run.layer_stat("grad_norm").steps.tolist() == list(range(6))


def test_a_different_model_still_reads_as_different_when_resumed(tmp_path):
    path = tmp_path / "r.h5"
    model = SharedRelu()
    session(path, model, torch.optim.SGD(model.parameters(), lr=1e-3), 2)
    other = Other()
    said = session(path, other, torch.optim.SGD(other.parameters(), lr=1e-3), 2, resume=True)
    assert any("differ from those of the run being resumed" in s for s in said), said
