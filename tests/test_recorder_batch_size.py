"""``sys/batch_size`` is the first dimension of the model's first tensor input, token ids
included, on the stats_every schedule: the advisor compares the first loss with it."""
from __future__ import annotations

import torch
from torch import nn

from trainspect.analysis.run import open_run
from trainspect.recorder import Recorder


def _record(path, model, batches, stats_every=1):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(path, stats_every=stats_every, dense_start=0) as rec:
        rec.watch(model, opt)
        for x in batches:
            loss = model(x).float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(path) as run:
        s = run.scalar("sys/batch_size")
        return s.steps.tolist(), s.values.tolist()


def test_the_batch_size_of_float_inputs_follows_each_batch(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    steps, sizes = _record(tmp_path / "f.h5", model, [torch.randn(16 + i, 4) for i in range(4)])
    assert steps == [0, 1, 2, 3] and sizes == [16, 17, 18, 19]


def test_token_ids_give_their_batch_size_too_on_the_stats_schedule(tmp_path):
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 7, 50))
    steps, sizes = _record(tmp_path / "t.h5", model, [torch.randint(0, 50, (12, 7)) for _ in range(6)], stats_every=2)
    assert steps == [0, 2, 4] and sizes == [12, 12, 12]
