"""Complex parameters (a Fourier neural operator's spectral weights) are recorded from their real
view: exact complex norms, parts counted apart, and nothing cast to real on the way
(FORMAT.md, *Complex parameters*)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from trainspect.analysis import open_run
from trainspect.recorder import Recorder

STEPS = 5


class SpectralMix(torch.nn.Module):
    """A complex mixing matrix between real layers, as a spectral convolution has."""

    def __init__(self, gen):
        super().__init__()
        self.mix = torch.nn.Parameter(torch.randn(6, 5, dtype=torch.cfloat, generator=gen) / 3)
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.head((x.to(torch.cfloat) @ self.mix).abs())


def plant_nonfinite(grad):
    """One non-finite part in one entry, two in another."""
    grad = grad.clone()
    grad[0, 0] = complex(float("nan"), 0.5)
    grad[2, 3] = complex(float("inf"), float("-inf"))
    return grad


def train(path, seed, device_path):
    """Train with every instrument at every step; returns what the file must hold."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SpectralMix(gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref = {"grad": [], "weight": [], "update": [], "mix": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, _device_path=device_path, stats_every=1, hist_every=1,
                      snapshot_every=1) as rec:
            rec.watch(model, opt)
            for step in range(STEPS):
                loss = model(torch.randn(4, 6, generator=gen)).pow(2).mean()
                opt.zero_grad()
                if step == STEPS - 1:   # inside backward(), where the recorder reads the gradients
                    model.mix.register_hook(plant_nonfinite)
                loss.backward()
                before = [p.detach().clone() for p in model.parameters()]
                ref["grad"].append([torch.linalg.vector_norm(p.grad).item() for p in model.parameters()])
                opt.step()
                ref["weight"].append([torch.linalg.vector_norm(p).item() for p in model.parameters()])
                ref["update"].append([torch.linalg.vector_norm(p.detach() - b).item()
                                      for p, b in zip(model.parameters(), before)])
                ref["mix"].append(torch.view_as_real(model.mix.detach()).reshape(6, 10).numpy().copy())
                rec.log({"loss": loss})
    return ref, [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
def test_complex_parameters_are_recorded_from_their_real_view(tmp_path, seed, device_path, host_path):
    path = tmp_path / "run.h5"
    ref, messages = train(path, seed, device_path)
    assert not [m for m in messages if "complex" in m.lower() or "trainspect" in m], messages
    last = STEPS - 1
    with open_run(path) as run:
        grads = run.layer_stat("grad_norm").values
        np.testing.assert_allclose(grads[:last], np.array(ref["grad"])[:last], rtol=1e-5)
        assert np.isnan(grads[last, 0]) and np.isfinite(grads[last, 1:]).all()
        # the real view: NaN+0.5j is one non-finite part, inf-infj two
        assert run.layer_stat("grad_nonfinite").values.tolist() == [[0, 0, 0]] * last + [[3, 0, 0]]
        # the update of the last step is NaN (a NaN gradient): compare the steps before it
        np.testing.assert_allclose(run.layer_stat("weight_norm").values[:last],
                                   np.array(ref["weight"])[:last], rtol=1e-5)
        np.testing.assert_allclose(run.layer_stat("update_norm").values[:last],
                                   np.array(ref["update"])[:last], rtol=1e-4, atol=1e-7)
        hist = run.histograms("weight")
        assert hist.counts[0, 0].sum() == 2 * 6 * 5     # real and imaginary parts, each counted
        snaps = run.snapshots()
        assert snaps.shapes[0].tolist() == [6, 10]     # the real view's columns
        first = snaps.data[0, 0]
        np.testing.assert_allclose(first[:6, :10], ref["mix"][0], rtol=2e-3, atol=2e-3)   # float16
        assert np.isnan(first[6:]).all() and np.isnan(first[:, 10:]).all()
