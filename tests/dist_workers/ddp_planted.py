"""One rank of a DDP job on gloo with planted rank-level problems (run by tests/test_rank_advisor.py).

argv: OUT_PATH STEPS PLANTS, PLANTS a comma list of ``kind:rank[:step]``:
  ``slow:R``     rank R sleeps 30 ms before each forward (a slow data loader);
  ``nan:R:S``    rank R's input batch holds a NaN at step S (a rank-local bad batch);
  ``shard:R``    rank R's targets come from another function (a shard of another dataset);
  ``none``       nothing planted.
"""
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from dist_job import batch_source, finish, mlp, start, train_step
from trainspect import Recorder

out, steps, rank, (plants,) = start()
slow = nan_at = None
shard = False
for plant in filter(None, plants.split(",")):
    kind, *args = plant.split(":")
    if kind == "none" or int(args[0]) != rank:
        continue
    if kind == "slow":
        slow = 0.03
    elif kind == "nan":
        nan_at = int(args[1])
    elif kind == "shard":
        shard = True

model = DDP(mlp(8, 16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.02)
next_batch = batch_source(rank)
with Recorder(out, stats_every=5, hist_every=0, snapshot_every=0) as rec:
    rec.watch(model, opt)
    for step in range(steps):
        if slow:
            time.sleep(slow)
        x, y = next_batch(64)
        if shard:
            y = 5.0 - 3.0 * y
        if step == nan_at:
            x[0, 0] = float("nan")
        rec.log({"train/loss": train_step(model, opt, x, y)})
finish(out, rank)
