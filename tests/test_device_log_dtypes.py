"""A scalar tensor of any dtype logged on the GPU path keeps its own value and everybody else's.

The GPU path batches logged device scalars into one ``torch.cat`` per transfer; float8 does
not promote there, and one fp8 scalar (an FP8 training recipe's amax or scale) made the whole
batch fail: every value logged since the last transfer was lost. CPU tensors take the device
path here (``Recorder(_device_path=True)``), as in test_sync_free.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import writer_thread as wt
from trainspect.recorder.records.scalar import SCALAR_VALUES

FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
       if hasattr(torch, n)]
OTHER = [torch.bfloat16, torch.float16, torch.int64, torch.bool,
         *(getattr(torch, n) for n in ("uint16", "uint32") if hasattr(torch, n))]


@pytest.mark.parametrize("seed", [0, 1])
def test_fp8_and_unusual_dtypes_are_recorded_with_the_loss(tmp_path, seed):
    gen = torch.Generator().manual_seed(seed)
    losses = (torch.rand(6, generator=gen) + 0.5).tolist()
    path = tmp_path / "run.h5"
    rec = Recorder(path, _device_path=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # nothing here deserves a warning
        for step, loss in enumerate(losses):
            metrics = {"loss": torch.tensor(loss)}
            metrics.update({f"fp8/{dt}".replace("torch.", ""): torch.tensor(0.5 * (step + 1), dtype=dt) for dt in FP8})
            metrics.update({f"other/{dt}".replace("torch.", ""): torch.tensor(step + 1, dtype=dt) for dt in OTHER})
            rec.log(metrics, step=step)
        rec.close()
    with open_run(path) as run:
        names = run.metric_names()
        np.testing.assert_allclose(run.scalar("loss").values, losses, rtol=1e-6)
        for dt in FP8:
            name = f"fp8/{dt}".replace("torch.", "")
            assert name in names
            want = [float(torch.tensor(0.5 * (s + 1), dtype=dt).float()) for s in range(6)]
            np.testing.assert_array_equal(run.scalar(name).values, want)
        for dt in OTHER:
            name = f"other/{dt}".replace("torch.", "")
            want = [1.0] * 6 if dt == torch.bool else [float(s + 1) for s in range(6)]
            np.testing.assert_array_equal(run.scalar(name).values, want)


def test_staging_batch_with_unpromotable_dtypes_loses_nothing():
    # The batch itself falls back to converting each tensor when cat cannot promote them.
    staging = wt.DeviceStaging(device_path=True)
    values = [torch.tensor([1.5]), torch.tensor([0.75], dtype=FP8[0]), torch.tensor([2.0], dtype=torch.bfloat16)]
    for i, v in enumerate(values):
        staging.add(v, SCALAR_VALUES, i, 0.0, i)
    batch = staging.take()
    (host, _event, placed), = batch.parts
    assert [p[4:] for p in placed] == [(0, 1), (1, 1), (2, 1)]
    np.testing.assert_array_equal(host.numpy(), [1.5, 0.75, 2.0])
