"""Dead units behind ``F.relu(bn(conv(x)))``, the pytorch/examples CNN idiom, are found.

In a model without activation modules the advisor reads each Linear/Conv output as the input of
the F.relu that follows it. Behind a BatchNorm that is the BatchNorm's output: the conv's is
re-centred first. A CNN trained with reduction='sum' under SGD, whose every unit of its last
conv block had died (its gradients exactly 0 from step 20 on), read "no sign of dead units"
(trial 16); a healthy CNN of the same shape stays silent.
"""
from __future__ import annotations

import pytest
from trainspect.analysis import diagnose
from trainspect.analysis.advisor.functional_acts import functional_candidates
from trainspect.recorder import Recorder


def test_the_batchnorm_after_a_conv_is_the_pre_activation():
    types = ["Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "Dropout", "Linear"]
    mods = ["c1", "b1", "c2", "b2", "drop", "fc"]
    assert functional_candidates(types, mods) == [1, 3]
    # the last Linear is the output even with a BatchNorm after it (a projection head)
    assert functional_candidates(["Linear", "BatchNorm1d", "Linear", "BatchNorm1d"], ["a", "an", "b", "bn"]) == [1]
    # no BatchNorm: the layers themselves, as before
    assert functional_candidates(["Conv2d", "Conv2d", "Linear"], ["c1", "c2", "fc"]) == [0, 1]


def _record(path, seed: int, dead: bool):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from tests.scenarios import RECORDER_OPTIONS
    F = torch.nn.functional
    digits = load_digits()
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c2, self.b2 = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16)
            self.fc = torch.nn.Linear(16 * 2 * 2, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
            x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
            return self.fc(x.flatten(1))

    model = Net()
    if dead:      # every unit of the second block below 0 for any input: nothing flows past it
        with torch.no_grad():
            model.b2.bias.fill_(-50.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    with Recorder(path, **RECORDER_OPTIONS) as rec:
        rec.watch(model, opt)
        for _ in range(150):
            idx = torch.randint(0, len(X), (64,), generator=g)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss})
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dead_units_behind_bn_and_f_relu_are_found_and_a_healthy_cnn_is_silent(tmp_path, seed):
    dead = diagnose(_record(tmp_path / "dead.h5", seed, dead=True))
    found = [f for f in dead if f.symptom == "dead_units"]
    assert found and "b2" in found[0].title and "functional" in found[0].title
    healthy = diagnose(_record(tmp_path / "ok.h5", seed, dead=False))
    assert not [f for f in healthy if f.symptom == "dead_units"]
    assert not [f for f in healthy if f.severity in ("warning", "error")]
