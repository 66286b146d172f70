"""On a launch-bound GPU loop every kernel the recorder launches at each step is paid on the
host (results/gpu-2026-12-04: 20-50 us each on an H200 machine). The per-step gradient record
must therefore launch a number of kernels that does not grow with the number of parameters:
a per-parameter kernel (the non-finite counts were one L0 norm per parameter) multiplied the
overhead of a 100-parameter transformer. Counted with benchmarks/launch_count.py's dispatch
counter on the recorder's GPU code path, no GPU needed; counts, not timings."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import launch_count  # noqa: E402

from trainspect.recorder import Recorder  # noqa: E402

PER_STEP_ONLY = {"stats_every": 0, "hist_every": 0, "snapshot_every": 0}


def launches_per_step(tmp_path, layers, seed, steps=6):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(layers)])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / f"run{layers}-{seed}.h5", _device_path=True, transfer_every=10_000,
                  **PER_STEP_ONLY) as rec:
        rec._transfer_interval = float("inf")   # the batched copy to the host (timed) is not counted
        rec.watch(model, opt)

        def step():
            loss = model(torch.randn(4, 8)).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step()                             # first step: the counter's plan goes to the device
        counter = launch_count.DeviceOpCounter()
        with counter:
            for _ in range(steps):
                step()
    return counter.launches / steps, counter.by_op


@pytest.mark.parametrize("seed", [0, 1])
def test_per_step_launches_do_not_grow_with_the_parameters(tmp_path, seed):
    few, _ = launches_per_step(tmp_path, 2, seed)        # 4 parameters
    many, by_op = launches_per_step(tmp_path, 60, seed)   # 120 parameters
    assert many == few, by_op
    assert many <= 12, by_op        # norms, counts, stack and cat: a handful, not one per parameter


def test_an_l0_norm_counts_one_launch_per_tensor():
    """The model behind the figures: torch's CUDA _foreach_norm fuses orders 1, 2 and inf only."""
    tensors = [torch.randn(3) for _ in range(5)]
    ops = torch.ops.aten
    assert launch_count.modelled_launches(ops._foreach_norm.Scalar, (tensors, 0)) == 5
    assert launch_count.modelled_launches(ops._foreach_norm.Scalar, (tensors, 2)) == 1
    assert launch_count.modelled_launches(ops.view.default, (tensors[0], [3])) == 0
