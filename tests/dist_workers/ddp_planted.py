"""One rank of a DDP job on gloo with planted rank-level problems (run by tests/test_rank_advisor.py).

argv: OUT_PATH STEPS PLANTS, PLANTS a comma list of ``kind:rank[:step]``:
  ``slow:R``     rank R sleeps 30 ms before each forward (a slow data loader);
  ``nan:R:S``    rank R's input batch holds a NaN at step S (a rank-local bad batch);
  ``shard:R``    rank R's targets come from another function (a shard of another dataset);
  ``none``       nothing planted.
"""
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from trainspect import Recorder

out, steps, plants = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo")
rank = dist.get_rank()
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

torch.manual_seed(0)
model = DDP(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.02)
gen = torch.Generator().manual_seed(100 + rank)
with Recorder(out, stats_every=5, hist_every=0, snapshot_every=0) as rec:
    rec.watch(model, opt)
    for step in range(steps):
        if slow:
            time.sleep(slow)
        x = torch.randn(64, 8, generator=gen)
        y = x.sum(1, keepdim=True)
        if shard:
            y = 5.0 - 3.0 * y
        if step == nan_at:
            x[0, 0] = float("nan")
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss})
dist.barrier()
dist.destroy_process_group()
