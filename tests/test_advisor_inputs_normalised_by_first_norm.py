"""Raw 0-255 pixels into a first layer followed by a normalisation layer are a note, not a warning
(trial 15, F19: fast_neural_style's TransformerNet puts InstanceNorm right after conv1 by design,
and every healthy run got "inputs are not standardised"). Without the norm layer they still warn."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


def _train(path, seed, norm):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    layers = [nn.ReflectionPad2d(1), nn.Conv2d(3, 8, 3)] + ([nn.InstanceNorm2d(8, affine=True)] if norm else []) + \
        [nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)]
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(120):
            x = torch.rand(8, 3, 16, 16, generator=g) * 255
            loss = F.mse_loss(model(x), x.flip(1) / 255)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return next(f for f in diagnose(path) if f.symptom == "unnormalized_inputs")


@pytest.mark.parametrize("seed", (0, 1))
def test_pixels_into_conv_then_instance_norm_are_a_note(tmp_path, seed):
    f = _train(tmp_path / "norm.h5", seed, norm=True)
    assert f.severity == "info" and "InstanceNorm2d right after the first layer" in f.title


def test_pixels_into_conv_then_relu_still_warn(tmp_path):
    assert _train(tmp_path / "plain.h5", 0, norm=False).severity == "warning"
